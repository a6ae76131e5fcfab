import type { EdgeEnvironment, ReplyChange } from '../../shared/contracts';
import { encryptCredentials } from '../../shared/protocol';
import { PUSH_TTL_MS, PushTracker } from './push';
import { EdgeRegistry } from './registry';

const env = (over: Partial<EdgeEnvironment> = {}): EdgeEnvironment => ({
  Id: 1, EdgeID: 'agent-1', Type: 4, EdgeCheckinInterval: 0, AsyncMode: false, AsyncIntervals: { Ping: 0, Snapshot: 0, Command: 0 }, UserTrusted: true,
  LastCheckInDate: 0, AgentVersion: '2.23.0', Rev: { fence: 1, seq: 1 }, ...over,
});

/** A registry wired to a tracker the way the polling runtime wires them. */
function setup() {
  const registry = new EdgeRegistry();
  const sent: ReplyChange[][] = [];
  const marks: [number, number][] = [];
  let now = 1000;
  const push = new PushTracker({
    registry,
    emit: async (items) => sent.push(items),
    heartbeat: (id, at) => marks.push([id, at]),
    now: () => now,
    log: { warn: () => undefined },
  });
  registry.onChanged = (id) => push.changed(id);
  registry.onAgentGone = (id) => push.gone(id);
  const tick = () => new Promise((r) => setImmediate(r));
  return { registry, push, sent, marks, tick, setNow: (s: number) => (now = s) };
}

describe('PushTracker', () => {
  it('sends a pushed environment its new reply once per change, in one batch per turn, and nothing for the others', async () => {
    const { registry, push, sent, tick } = setup();
    registry.apply(env({ Id: 1 }));
    registry.apply(env({ Id: 2, EdgeID: 'agent-2' }));
    push.open(registry.get(1)!);
    const credentials = encryptCredentials('u:p', 'agent-1');
    registry.setTunnel({ id: 1, status: 'REQUIRED', port: 50000, credentials, edgeId: 'agent-1', version: 1 });
    registry.setTunnel({ id: 2, status: 'REQUIRED', port: 50001, credentials: encryptCredentials('u:p', 'agent-2'), edgeId: 'agent-2', version: 1 });
    await tick();
    expect(sent).toHaveLength(1);
    const reply = registry.reply(registry.get(1)!);
    expect(sent[0]).toEqual([{ id: 1, kind: 'status', etag: reply.etag, body: reply.json }]);
    expect(JSON.parse(sent[0][0].body!)).toMatchObject({ status: 'REQUIRED', port: 50000, credentials });

    // A change that leaves the reply as it was (another field of the environment) is not sent.
    registry.apply(env({ Id: 1, Rev: { fence: 1, seq: 2 } }));
    push.changedAll();
    await tick();
    expect(sent).toHaveLength(1);

    // New settings that change the interval are.
    registry.setSettings({ ...registry.settings, EdgeAgentCheckinInterval: 30 });
    push.changedAll();
    await tick();
    expect(sent).toHaveLength(2);
    expect(JSON.parse(sent[1][0].body!).checkin).toBe(30);
  });

  it('nudges an async agent when its timers change, and only then', async () => {
    const { registry, push, sent, tick } = setup();
    registry.apply(env({ AsyncMode: true, AsyncIntervals: { Ping: 60, Snapshot: 60, Command: 60 } }));
    push.open(registry.get(1)!);
    registry.apply(env({ AsyncMode: true, AsyncIntervals: { Ping: 60, Snapshot: 60, Command: 60 }, Rev: { fence: 1, seq: 2 } }));
    await tick();
    expect(sent).toHaveLength(0);
    registry.apply(env({ AsyncMode: true, AsyncIntervals: { Ping: 60, Snapshot: 60, Command: 10 }, Rev: { fence: 1, seq: 3 } }));
    await tick();
    expect(sent).toEqual([[{ id: 1, kind: 'timers' }]]);
  });

  it('revokes the connection of an agent that lost its association, and answers "unknown" for it until it is admitted again', async () => {
    const { registry, push, sent, tick } = setup();
    registry.apply(env());
    push.open(registry.get(1)!);
    registry.apply(env({ EdgeID: '', Rev: { fence: 1, seq: 2 } }));
    await tick();
    expect(sent).toEqual([[{ id: 1, kind: 'revoked' }]]);
    expect(push.alive([1])).toEqual([1]);
    registry.apply(env({ EdgeID: 'agent-2', Rev: { fence: 1, seq: 3 } }));
    push.open(registry.get(1)!);
    expect(push.alive([1])).toEqual([]);
    expect(push.alive([77])).toEqual([77]);
  });

  it('gives pushed agents heartbeats from the gateways\' reports, handed to the flusher once per check-in interval', () => {
    const { registry, push, marks, setNow } = setup();
    registry.apply(env({ EdgeCheckinInterval: 30 }));
    push.open(registry.get(1)!);
    for (const t of [1005, 1010, 1029, 1030, 1035]) {
      setNow(t);
      expect(push.alive([1])).toEqual([]);
      expect(registry.get(1)!.heartbeat).toBe(t);
    }
    expect(marks).toEqual([[1, 1030]]);
  });

  it('takes over an id another replica tracked (sends its current reply once) and forgets ids no gateway reports', async () => {
    const { registry, push, sent, tick } = setup();
    registry.apply(env());
    expect(push.alive([1])).toEqual([]);
    await tick();
    expect(sent).toHaveLength(1);
    expect(sent[0][0]).toMatchObject({ id: 1, kind: 'status' });
    expect(push.size).toBe(1);
    push.sweep(Date.now() + PUSH_TTL_MS + 1);
    expect(push.size).toBe(0);
    registry.setTunnel({ id: 1, status: 'REQUIRED', port: 50000, credentials: encryptCredentials('u:p', 'agent-1'), edgeId: 'agent-1', version: 1 });
    await tick();
    expect(sent).toHaveLength(1);
  });
});
