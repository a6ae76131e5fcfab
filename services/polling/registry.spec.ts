import type { EdgeEnvironment } from '../../shared/contracts';
import { decryptCredentials, encryptCredentials, etag } from '../../shared/protocol';
import { EdgeRegistry } from './registry';

const env = (over: Partial<EdgeEnvironment> = {}): EdgeEnvironment => ({
  Id: 1, EdgeID: '', Type: 4, EdgeCheckinInterval: 0, AsyncMode: false, AsyncIntervals: { Ping: 0, Snapshot: 0, Command: 0 }, UserTrusted: true, LastCheckInDate: 0, AgentVersion: '',
  Rev: { fence: 1, seq: 1 }, ...over,
});

describe('EdgeRegistry', () => {
  it('keeps the newest view of an environment whatever order views arrive in', () => {
    const r = new EdgeRegistry();
    expect(r.apply(env({ EdgeID: 'a', Rev: { fence: 1, seq: 5 } }))).toBe(true);
    expect(r.apply(env({ EdgeID: '', Rev: { fence: 1, seq: 4 } }))).toBe(false);
    expect(r.get(1)!.env.EdgeID).toBe('a');
    r.remove(1, { fence: 1, seq: 3 });
    expect(r.get(1)).toBeDefined();
    // A new leader's views win over the old leader's, whatever their counters.
    expect(r.apply(env({ EdgeID: 'b', Rev: { fence: 2, seq: 1 } }))).toBe(true);
    r.remove(1, { fence: 2, seq: 2 });
    expect(r.get(1)).toBeUndefined();
  });

  it('drops heartbeats and tunnel of the old agent when the association changes', () => {
    const gone: number[] = [];
    const r = new EdgeRegistry();
    r.onAgentGone = (id) => gone.push(id);
    r.apply(env({ EdgeID: 'a', LastCheckInDate: 100 }));
    const e = r.get(1)!;
    e.heartbeat = 150;
    r.setTunnel({ id: 1, status: 'REQUIRED', port: 50000, credentials: encryptCredentials('u:p', 'a'), edgeId: 'a' });
    expect(r.reply(e).json).toContain('REQUIRED');
    r.apply(env({ EdgeID: 'a', LastCheckInDate: 120, Rev: { fence: 1, seq: 2 } }));
    expect(e.heartbeat).toBe(150);
    r.apply(env({ EdgeID: '', LastCheckInDate: 0, Rev: { fence: 1, seq: 3 } }));
    expect(e.heartbeat).toBe(0);
    expect(gone).toEqual([1]);
    expect(JSON.parse(r.reply(e).json)).toMatchObject({ status: 'IDLE', port: 0, credentials: '' });
  });

  it('answers REQUIRED only to the agent the credentials were encrypted for', () => {
    const r = new EdgeRegistry();
    r.apply(env({ EdgeID: 'a' }));
    const e = r.get(1)!;
    r.setTunnel({ id: 1, status: 'REQUIRED', port: 50001, credentials: encryptCredentials('u:p', 'a'), edgeId: 'a', version: 2 });
    const body = JSON.parse(r.reply(e).json);
    expect(body).toMatchObject({ status: 'REQUIRED', port: 50001 });
    expect(decryptCredentials(body.credentials, 'a')).toBe('u:p');
    // An older call (reaching this replica late) is ignored.
    expect(r.setTunnel({ id: 1, status: 'IDLE', port: 0, credentials: '', edgeId: '', version: 1 })).toBe(false);
    expect(r.setTunnel({ id: 1, status: 'IDLE', port: 0, credentials: '', edgeId: '', version: 3 })).toBe(true);
    expect(JSON.parse(r.reply(e).json).status).toBe('IDLE');
  });

  it('rebuilds replies on settings changes only for environments using the default interval', () => {
    const r = new EdgeRegistry();
    r.apply(env({ Id: 1 }));
    r.apply(env({ Id: 2, EdgeCheckinInterval: 30 }));
    const [a, b] = [r.get(1)!, r.get(2)!];
    const tagA = r.reply(a).etag;
    const replyB = r.reply(b);
    expect(tagA).toBe(etag('{"status":"IDLE","port":0,"schedules":[],"checkin":5,"credentials":"","stacks":[]}\n'));
    r.setSettings({ ...r.settings, EdgeAgentCheckinInterval: 60 });
    expect(JSON.parse(r.reply(a).json).checkin).toBe(60);
    expect(r.reply(b)).toBe(replyB);
  });

  it('reseeds: drops what state no longer has, keeps what changed after the read began', () => {
    const r = new EdgeRegistry();
    r.apply(env({ Id: 1 }));
    r.apply(env({ Id: 2 }));
    const since = r.generation();
    r.apply(env({ Id: 3 }));
    r.reseed([env({ Id: 1, Rev: { fence: 1, seq: 9 } })], since);
    expect([1, 2, 3].map((id) => !!r.get(id))).toEqual([true, false, true]);
  });
});
