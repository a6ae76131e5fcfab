import type { ServiceBroker } from 'moleculer';
import type { Config } from '../../shared/config';
import { call } from '../../shared/contracts';
import { decryptCredentials, etag } from '../../shared/protocol';
import { api, type ApiResponse } from '../../test/helpers/http';
import { startTestNode, tempDataDir, uniqueNamespace } from '../../test/helpers/node';
import { Repository } from '../state/repository';
import { CheckinHandler } from './checkin';
import { FLUSH_INTERVAL_MS, HeartbeatFlusher } from './flusher';

/** No snapshots service: these agents are raw requests, and a first snapshot would ask them for a tunnel. */
const CHECKIN_SERVICES: Config['services'] = ['gateway', 'state', 'rbac', 'polling', 'tunnel'];
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** What the tests drive: the HTTPS API and a broker that reaches every service. */
interface Server {
  url: string;
  broker: ServiceBroker;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

/**
 * The embedded default (a check-in is a function call), or the gateway in a node of its own over
 * the real NATS server (check-ins travel to polling in `polling.checkinBatch` calls).
 */
async function startServer(dataDir: string, split: boolean, namespace: string): Promise<Server> {
  if (!split) {
    const n = await startTestNode({ dataDir, namespace, services: CHECKIN_SERVICES });
    return { url: n.url, broker: n.node.broker, stop: (o) => n.stop(o) };
  }
  const shared = { namespace, transporter: NATS_URL, election: 'local' as const };
  const core = await startTestNode({ ...shared, dataDir, nodeID: `${namespace}-core`, services: CHECKIN_SERVICES.filter((s) => s !== 'gateway') });
  const gw = await startTestNode({ ...shared, nodeID: `${namespace}-gw`, services: ['gateway'] });
  await gw.node.broker.waitForServices(['state', 'rbac', 'polling', 'tunnel'], 15_000);
  return {
    url: gw.url, broker: gw.node.broker,
    async stop(o) {
      await gw.stop();
      await core.stop(o);
    },
  };
}

jest.setTimeout(90_000);

const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };
const IDLE = { status: 'IDLE', port: 0, schedules: [], checkin: 5, credentials: '', stacks: [] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Standard-mode Edge check-ins through the real HTTPS route, as a Portainer agent makes them, in both shapes. */
describe.each([['embedded', false], ['gateway apart over NATS', true]])('edge check-ins (%s)', (_shape, split) => {
  const dataDir = tempDataDir('capstan-poll-');
  const namespace = uniqueNamespace('poll');
  let n: Server;
  let batches: jest.SpyInstance;
  let token: string;
  let envId: number;

  const checkin = (id: number, edgeId: string | undefined, extra: Record<string, string> = {}): Promise<ApiResponse> => {
    const headers: Record<string, string> = { 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1', 'X-PortainerAgent-TimeZone': 'Local', ...extra };
    if (edgeId !== undefined) headers['X-PortainerAgent-EdgeID'] = edgeId;
    return api(n.url, 'GET', `/api/endpoints/${id}/edge/status`, { headers });
  };
  const createEdge = async (name: string, extra: Record<string, unknown> = {}) => {
    const res = await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: name, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', ...extra } });
    expect(res.status).toBe(200);
    return res.body.Id as number;
  };
  const login = async () => (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt as string;

  beforeAll(async () => {
    batches = jest.spyOn(CheckinHandler.prototype, 'batch');
    n = await startServer(dataDir, split, namespace);
    expect((await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    token = await login();
    envId = await createEdge('site-1');
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await n?.stop();
  });

  it('binds the Edge ID at the first check-in and answers with an ETag over the exact bytes', async () => {
    const res = await checkin(envId, 'agent-1');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(IDLE);
    expect(res.text).toBe(`${JSON.stringify(IDLE)}\n`);
    expect(res.headers.etag).toBe(etag(res.text));
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['x-capstan-push']).toBe(`/api/endpoints/${envId}/edge/push`);
    // Apart, the gateway sent it in a batch (and again to wait for the binding); embedded, as a call of its own.
    expect(batches).toHaveBeenCalledTimes(split ? 2 : 0);

    const env = (await api(n.url, 'GET', `/api/endpoints/${envId}`, { token })).body;
    expect(env).toMatchObject({ EdgeID: 'agent-1', Agent: { Version: '2.23.0' }, Type: 4, Heartbeat: true, Status: 1 });
    expect(env.LastCheckInDate).toBeGreaterThan(0);
  });

  it('answers 304 when If-None-Match lists the current ETag', async () => {
    const first = await checkin(envId, 'agent-1');
    const tag = first.headers.etag as string;
    let res = await checkin(envId, 'agent-1', { 'If-None-Match': tag });
    expect(res.status).toBe(304);
    expect(res.headers.etag).toBe(tag);
    expect(res.headers['x-capstan-push']).toBe(`/api/endpoints/${envId}/edge/push`);
    expect(res.text).toBe('');
    res = await checkin(envId, 'agent-1', { 'If-None-Match': `1234abcd,deadbeef,${tag}` });
    expect(res.status).toBe(304);
    res = await checkin(envId, 'agent-1', { 'If-None-Match': '1234abcd' });
    expect(res.status).toBe(200);
    expect(res.headers.etag).toBe(tag);
  });

  it('refuses another Edge ID with 403 for as long as the binding holds, and bad requests with 400/404', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await checkin(envId, 'agent-2');
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ message: 'Permission denied to access environment', details: 'invalid Edge identifier' });
      expect(res.headers['x-capstan-push']).toBeUndefined();
    }
    // Even with the current ETag: the Edge ID is checked first.
    const tag = (await checkin(envId, 'agent-1')).headers.etag as string;
    expect((await checkin(envId, 'agent-2', { 'If-None-Match': tag })).status).toBe(403);
    expect((await checkin(envId, undefined)).body).toEqual({ message: 'Permission denied to access environment', details: 'missing Edge identifier' });
    let res = await checkin(envId, 'agent-1', { 'Portainer-Agent-Platform': '3' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ message: 'agent platform header is not valid', details: expect.any(String) });
    res = await api(n.url, 'GET', `/api/endpoints/${envId}/edge/status`, { headers: { 'x-portaineragent-edgeid': 'agent-1' } });
    expect(res.status).toBe(400);
    res = await checkin(99999, 'agent-1');
    expect(res.status).toBe(404);
    expect(Object.keys(res.body).sort()).toEqual(['details', 'message']);
    // A non-Edge environment is not a check-in target either.
    const docker = await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: 'local', EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock' } });
    expect((await checkin(docker.body.Id, 'agent-1')).status).toBe(404);
    res = await api(n.url, 'GET', `/api/endpoints/${envId}/status?x=1`, { headers: { 'x-portaineragent-edgeid': 'agent-1' } });
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe(`/api/endpoints/${envId}/edge/status?x=1`);
  });

  it('takes checkin from the environment, else from the settings; a change changes the ETag', async () => {
    const before = await checkin(envId, 'agent-1');
    expect(before.body.checkin).toBe(5);
    expect((await api(n.url, 'PUT', `/api/endpoints/${envId}`, { token, body: { EdgeCheckinInterval: 30 } })).status).toBe(200);
    let res = await checkin(envId, 'agent-1', { 'If-None-Match': before.headers.etag as string });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...IDLE, checkin: 30 });
    expect(res.headers.etag).not.toBe(before.headers.etag);

    const other = await createEdge('site-2');
    // Seeding pages through every Edge environment in id order.
    const page = await call(n.broker, 'state.edgeEnvironments', { afterId: 0, limit: 1 });
    expect(page.map((e) => e.Id)).toEqual([envId]);
    expect((await call(n.broker, 'state.edgeEnvironments', { afterId: envId, limit: 5 })).map((e) => e.Id)).toEqual([other]);
    expect((await checkin(other, 'agent-x')).body.checkin).toBe(5);
    expect((await api(n.url, 'PUT', '/api/settings', { token, body: { EdgeAgentCheckinInterval: 10 } })).status).toBe(200);
    expect((await checkin(other, 'agent-x')).body.checkin).toBe(10);
    // Its own interval wins over the settings.
    expect((await checkin(envId, 'agent-1')).body.checkin).toBe(30);
    expect((await api(n.url, 'PUT', `/api/endpoints/${envId}`, { token, body: { EdgeCheckinInterval: 0 } })).status).toBe(200);
    expect((await checkin(envId, 'agent-1')).body.checkin).toBe(10);
    expect((await api(n.url, 'PUT', '/api/settings', { token, body: { EdgeAgentCheckinInterval: 5 } })).status).toBe(200);
    res = await checkin(envId, 'agent-1');
    expect(res.body).toEqual(IDLE);
    expect(res.headers.etag).toBe(before.headers.etag);
  });

  it('says REQUIRED with credentials only the bound agent can decrypt when the tunnel service asks', async () => {
    const broker = n.broker;
    await call(broker, 'polling.setTunnel', { id: envId, status: 'REQUIRED', port: 51234, credentials: 'AbCd1234:pAsS5678' });
    const res = await checkin(envId, 'agent-1');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'REQUIRED', port: 51234, checkin: 5 });
    expect(decryptCredentials(res.body.credentials, 'agent-1')).toBe('AbCd1234:pAsS5678');
    expect(() => decryptCredentials(res.body.credentials, 'agent-2')).toThrow();
    // Stable while nothing changes: the agent gets 304s.
    expect((await checkin(envId, 'agent-1', { 'If-None-Match': res.headers.etag as string })).status).toBe(304);
    await call(broker, 'polling.setTunnel', { id: envId, status: 'IDLE' });
    expect((await checkin(envId, 'agent-1')).body).toEqual(IDLE);
  });

  it('shows live heartbeats in lists before they are flushed, then persists them in batches', async () => {
    const flush = jest.spyOn(HeartbeatFlusher.prototype, 'flush').mockResolvedValue(undefined);
    const stored = () => call(n.broker, 'state.getEnvironment', { id: envId });
    const t0 = (await stored()).LastCheckInDate;
    while (Math.floor(Date.now() / 1000) <= t0) await sleep(100);
    expect((await checkin(envId, 'agent-1')).status).toBe(200);
    const live = Math.floor(Date.now() / 1000);

    const list = await api(n.url, 'GET', '/api/endpoints?search=site-1', { token });
    const listed = list.body.find((e: { Id: number }) => e.Id === envId);
    expect(listed).toMatchObject({ Heartbeat: true, Status: 1 });
    expect(listed.LastCheckInDate).toBeGreaterThan(t0);
    expect(listed.LastCheckInDate).toBeLessThanOrEqual(live);
    expect((await stored()).LastCheckInDate).toBe(t0);

    flush.mockRestore();
    await sleep(FLUSH_INTERVAL_MS + 1500);
    expect((await stored()).LastCheckInDate).toBe(listed.LastCheckInDate);

    await n.stop({ keepData: true });
    n = await startServer(dataDir, split, namespace);
    token = await login();
    const env = (await api(n.url, 'GET', `/api/endpoints/${envId}`, { token })).body;
    expect(env.LastCheckInDate).toBe(listed.LastCheckInDate);
    expect(env.EdgeID).toBe('agent-1');
  });

  it('writes nothing per check-in: 200 check-ins cost only the batched heartbeat flushes', async () => {
    expect((await checkin(envId, 'agent-1')).status).toBe(200);
    const commit = jest.spyOn(Repository.prototype, 'commit');
    const started = Date.now();
    let tag = '';
    for (let i = 0; i < 200; i++) {
      const res = await checkin(envId, 'agent-1', tag ? { 'If-None-Match': tag } : {});
      expect([200, 304]).toContain(res.status);
      tag = res.headers.etag as string;
    }
    const elapsed = Date.now() - started;
    await sleep(FLUSH_INTERVAL_MS + 1000);
    const calls = commit.mock.calls.map(([ops]) => ops);
    commit.mockRestore();
    const flushes = calls.filter((ops) => ops.some((op) => op.collection === 'checkins'));
    // At most one flush per interval, each one commit; at least one carried the heartbeats.
    expect(flushes.length).toBeGreaterThanOrEqual(1);
    expect(flushes.length).toBeLessThanOrEqual(Math.ceil((elapsed + FLUSH_INTERVAL_MS + 1000) / FLUSH_INTERVAL_MS) + 1);
    for (const ops of flushes) expect(ops).toEqual([{ op: 'put', collection: 'checkins', key: envId, value: { at: expect.any(Number) } }]);
    // A heartbeat never rewrites the environment document.
    expect(calls.filter((ops) => ops.some((op) => op.collection === 'environments'))).toEqual([]);
  });

  it('lets another agent bind after an admin clears the association', async () => {
    expect((await api(n.url, 'DELETE', `/api/endpoints/${envId}/association`)).status).toBe(401);
    const res = await api(n.url, 'DELETE', `/api/endpoints/${envId}/association`, { token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ Id: envId, EdgeID: '', LastCheckInDate: 0, Snapshots: [], Heartbeat: false });
    expect((await checkin(envId, 'agent-2')).status).toBe(200);
    expect((await checkin(envId, 'agent-1')).status).toBe(403);
    expect((await api(n.url, 'GET', `/api/endpoints/${envId}`, { token })).body.EdgeID).toBe('agent-2');
    expect((await api(n.url, 'DELETE', '/api/endpoints/99999/association', { token })).status).toBe(404);
  });
});
