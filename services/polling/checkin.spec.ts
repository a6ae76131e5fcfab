import type { EdgeEnvironment } from '../../shared/contracts';
import { ForbiddenError } from '../../shared/errors';
import { CheckinHandler } from './checkin';
import { EdgeRegistry } from './registry';

const env = (over: Partial<EdgeEnvironment> = {}): EdgeEnvironment => ({
  Id: 1, EdgeID: '', Type: 4, EdgeCheckinInterval: 0, AsyncMode: false, AsyncIntervals: { Ping: 0, Snapshot: 0, Command: 0 }, UserTrusted: true, LastCheckInDate: 0, AgentVersion: '',
  Rev: { fence: 1, seq: 1 }, ...over,
});

function setup(lookup?: (id: number) => Promise<EdgeEnvironment | undefined>) {
  const registry = new EdgeRegistry();
  registry.apply(env());
  let seq = 10;
  const bind = jest.fn(async (p: { id: number; edgeId: string; agentVersion: string; platform: 1 | 2 }) => {
    const cur = registry.get(p.id)!.env;
    if (cur.EdgeID && cur.EdgeID !== p.edgeId) throw new ForbiddenError('Permission denied to access environment', 'invalid Edge identifier');
    await new Promise((r) => setTimeout(r, 5));
    return { environment: { ...cur, EdgeID: p.edgeId, AgentVersion: p.agentVersion, Type: p.platform === 2 ? 7 : 4, Rev: { fence: 1, seq: ++seq } } };
  });
  const beats: Array<[number, number]> = [];
  const h = new CheckinHandler({ registry, bind, heartbeat: (id, at) => beats.push([id, at]), now: () => 1000, lookup });
  return { registry, bind, beats, h };
}

const agent = { id: 1, edgeId: 'agent-1', agentVersion: '2.23.0', platform: '1' };

describe('CheckinHandler', () => {
  it('asks state about an environment it does not know before answering 404', async () => {
    const lookups: number[] = [];
    const { h } = setup(async (id) => {
      lookups.push(id);
      return id === 2 ? env({ Id: 2, Rev: { fence: 1, seq: 2 } }) : undefined;
    });
    expect((await h.checkin({ ...agent, id: 2 })).status).toBe(200);
    expect((await h.checkin({ ...agent, id: 3 })).status).toBe(404);
    expect(lookups).toEqual([2, 3]);
  });

  it('binds once for a burst of first check-ins, then answers from memory', async () => {
    const { h, bind, beats } = setup();
    const first = await Promise.all(Array.from({ length: 20 }, () => h.checkin(agent)));
    expect(first.every((r) => r.status === 200)).toBe(true);
    expect(bind).toHaveBeenCalledTimes(1);
    const again = await h.checkin({ ...agent, ifNoneMatch: first[0].etag });
    expect(again).toEqual({ status: 304, etag: first[0].etag });
    expect(bind).toHaveBeenCalledTimes(1);
    expect(beats).toHaveLength(21);
  });

  it('writes again only when the agent version or platform changes', async () => {
    const { h, bind, registry } = setup();
    await h.checkin(agent);
    await h.checkin({ ...agent, agentVersion: '2.24.0' });
    expect(bind).toHaveBeenCalledTimes(2);
    await h.checkin({ ...agent, agentVersion: '2.24.0', platform: '2' });
    expect(bind).toHaveBeenCalledTimes(3);
    expect(registry.get(1)!.env.Type).toBe(7);
  });

  it('refuses without side effects: no heartbeat for a refused agent', async () => {
    const { h, beats, registry } = setup();
    await h.checkin(agent);
    beats.length = 0;
    expect((await h.checkin({ ...agent, edgeId: 'agent-2' })).status).toBe(403);
    expect((await h.checkin({ ...agent, edgeId: ' ' })).error?.details).toBe('missing Edge identifier');
    expect((await h.checkin({ ...agent, platform: undefined })).status).toBe(400);
    expect((await h.checkin({ ...agent, id: 2 })).status).toBe(404);
    registry.apply(env({ EdgeID: 'agent-1', AgentVersion: '2.23.0', UserTrusted: false, Rev: { fence: 1, seq: 99 } }));
    expect((await h.checkin(agent)).error?.details).toBe('the device has not been trusted yet');
    registry.setSettings({ ...registry.settings, TrustOnFirstConnect: true });
    expect((await h.checkin(agent)).status).toBe(200);
    expect(beats).toEqual([[1, 1000]]);
  });

  it('turns a binding refused by state (another agent won meanwhile) into a 403', async () => {
    const { h, registry } = setup();
    const e = registry.get(1)!;
    // Memory has not seen the other agent's binding yet; state has.
    const bindSpy = jest.fn().mockRejectedValue(new ForbiddenError('Permission denied to access environment', 'invalid Edge identifier'));
    (h as unknown as { deps: { bind: unknown } }).deps.bind = bindSpy;
    const r = await h.checkin(agent);
    expect(r).toEqual({ status: 403, error: { message: 'Permission denied to access environment', details: 'invalid Edge identifier' } });
    expect(e.heartbeat).toBe(0);
  });

  it('answers a batch item by item: memory answers at once, an item waiting on state comes back pending, errors stay in place', async () => {
    const { h, bind, registry } = setup();
    const bound = await h.checkin(agent);
    registry.apply(env({ Id: 2, Rev: { fence: 1, seq: 2 } }));
    registry.apply(env({ Id: 3, Rev: { fence: 1, seq: 3 } }));
    // State is unreachable for environment 3's binding.
    const realBind = bind.getMockImplementation()!;
    bind.mockImplementation(async (p) => (p.id === 3 ? Promise.reject(new Error('state is gone')) : realBind(p)));
    const carry = (err: Error) => ({ name: err.name, message: err.message });
    const items = await h.batch([
      { ...agent, ifNoneMatch: bound.etag },
      { ...agent, id: 2, edgeId: 'agent-2' },
      { ...agent, edgeId: 'agent-9' },
      { ...agent, id: 3, edgeId: 'agent-3' },
      { ...agent, id: 4 },
    ], carry);
    expect(items).toEqual([
      { status: 304, etag: bound.etag },
      { pending: true },
      { status: 403, error: { message: 'Permission denied to access environment', details: 'invalid Edge identifier' } },
      { failed: { name: 'Error', message: 'state is gone' } },
      { status: 404, error: expect.objectContaining({ details: 'environment not found' }) },
    ]);
    // The pending binding went on: asking again, waiting this time, joins it with no second write.
    const [again] = await h.batch([{ ...agent, id: 2, edgeId: 'agent-2' }], carry, true);
    expect(again).toMatchObject({ status: 200, body: expect.stringContaining('"status":"IDLE"') });
    expect(bind.mock.calls.filter(([p]) => p.id === 2)).toHaveLength(1);
    expect(registry.get(2)!.env.EdgeID).toBe('agent-2');
  });
});
