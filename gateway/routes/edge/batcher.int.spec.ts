import { call, type CheckinParams } from '../../../shared/contracts';
import { api } from '../../../test/helpers/http';
import { startTestNode, tempDataDir, uniqueNamespace, type TestNode } from '../../../test/helpers/node';
import { waitFor } from '../../../test/helpers/processes';
import { CheckinHandler } from '../../../services/polling/checkin';
import { toHttpError } from '../../plugins/errors';
import { CheckinBatcher } from './batcher';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
jest.setTimeout(90_000);

const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };
const agent = (id: number, edgeId: string | undefined, extra: Partial<CheckinParams> = {}): CheckinParams => ({ id, edgeId, agentVersion: '2.23.0', platform: '1', ...extra });

/**
 * `CheckinBatcher` against a polling node over the real NATS server (gateway, state and polling
 * each in a node of their own): many check-ins in one `polling.checkinBatch` call, each answered
 * exactly as a `polling.checkin` call of its own is answered, or failing the same way.
 */
describe('check-in batches over NATS', () => {
  const namespace = uniqueNamespace('batch');
  const shared = { namespace, transporter: NATS_URL, election: 'local' as const };
  let core: TestNode;
  let polling: TestNode;
  let gw: TestNode;
  let token: string;
  const ids: number[] = [];
  /** Each batch polling received: its size, `w` when asked to wait for every item. */
  const batches: string[] = [];

  beforeAll(async () => {
    core = await startTestNode({ ...shared, dataDir: tempDataDir(), nodeID: `${namespace}-core`, services: ['state', 'rbac', 'tunnel'] });
    polling = await startTestNode({ ...shared, nodeID: `${namespace}-polling`, services: ['polling'] });
    gw = await startTestNode({ ...shared, nodeID: `${namespace}-gw`, services: ['gateway'] });
    await gw.node.broker.waitForServices(['state', 'rbac', 'polling'], 15_000);
    expect((await api(gw.url, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    token = (await api(gw.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
    for (const name of ['b-1', 'b-2', 'b-3']) {
      const res = await api(gw.url, 'POST', '/api/endpoints', { token, body: { Name: name, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' } });
      expect(res.status).toBe(200);
      ids.push(res.body.Id);
    }
    const original = CheckinHandler.prototype.batch;
    jest.spyOn(CheckinHandler.prototype, 'batch').mockImplementation(function (this: CheckinHandler, items, carry, wait) {
      batches.push(`${items.length}${wait ? 'w' : ''}`);
      return original.call(this, items, carry, wait);
    });
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await gw?.stop();
    await polling?.stop();
    await core?.stop();
  });

  it('answers each check-in of one batch exactly as a call of its own would', async () => {
    const [a, b] = ids;
    // Bound through the route, which batches too: the gateway node runs no polling.
    const first = await api(gw.url, 'GET', `/api/endpoints/${a}/edge/status`, { headers: { 'X-PortainerAgent-EdgeID': 'agent-a', 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1' } });
    expect(first.status).toBe(200);
    const tag = first.headers.etag as string;
    // The first check-in waited on state's binding: asked again, to wait for it.
    expect(batches).toEqual(['1', '1w']);

    const items = [
      agent(a, 'agent-a', { ifNoneMatch: `deadbeef,${tag}` }), // 304
      agent(a, 'agent-a'), // 200 with the body
      agent(a, 'agent-x'), // 403: another agent is bound
      agent(b, 'agent-b'), // 200: first check-in, waits on state's binding
      agent(99999, 'agent-a'), // 404
      agent(a, 'agent-a', { platform: '3' }), // 400
      agent(a, undefined), // 403: no Edge ID
    ];
    const batcher = new CheckinBatcher(gw.node.broker, { windowMs: 50 });
    const batched = await Promise.all(items.map((p) => batcher.checkin(p)));
    // Agent b's binding and the unknown id's lookup waited on state: asked again together.
    expect(batches.slice(2)).toEqual([String(items.length), '2w']);
    expect(batched.map((r) => r.status)).toEqual([304, 200, 403, 200, 404, 400, 403]);
    expect(batched[0].etag).toBe(tag);
    expect(batched[1]).toEqual({ status: 200, etag: tag, body: first.text });
    expect(batched[3].etag).toBe(tag); // the same IDLE reply bytes
    const single = [];
    for (const p of items) single.push(await call(gw.node.broker, 'polling.checkin', p));
    expect(batched).toEqual(single);
    expect((await call(gw.node.broker, 'state.getEnvironment', { id: b })).EdgeID).toBe('agent-b');
  });

  it('keeps per-item errors apart: a check-in that needs state while it is gone fails alone, as it would alone', async () => {
    const [a, , c] = ids;
    const tag = (await call(gw.node.broker, 'polling.checkin', agent(a, 'agent-a'))).etag!;
    await core.stop();
    await waitFor(async () => !polling.node.broker.registry.getServiceList({ onlyAvailable: true }).some((s) => s.name === 'state'), 10_000, 'polling to see state leave');

    const batcher = new CheckinBatcher(gw.node.broker, { windowMs: 50 });
    const items = [agent(a, 'agent-a', { ifNoneMatch: tag }), agent(c, 'agent-c'), agent(a, 'agent-a')];
    const settled = await Promise.allSettled(items.map((p) => batcher.checkin(p)));
    expect(batches.at(-1)).toBe('3');
    expect(settled[0]).toEqual({ status: 'fulfilled', value: { status: 304, etag: tag } });
    expect(settled[2]).toMatchObject({ status: 'fulfilled', value: { status: 200, etag: tag } });
    expect(settled[1].status).toBe('rejected');
    const batchedErr = (settled[1] as PromiseRejectedResult).reason;
    const singleErr = await call(gw.node.broker, 'polling.checkin', items[1]).then(() => undefined, (err: unknown) => err);
    expect(singleErr).toBeDefined();
    expect(batchedErr.constructor).toBe((singleErr as Error).constructor);
    // What the agent gets: the same 503 with Retry-After, never a 500.
    const http = toHttpError(batchedErr, 'req-1');
    expect(http).toEqual(toHttpError(singleErr, 'req-1'));
    expect(http).toMatchObject({ status: 503, headers: { 'retry-after': '1' } });
  });
});
