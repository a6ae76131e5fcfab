import { call } from '../../shared/contracts';
import { decryptCredentials } from '../../shared/protocol';
import { api } from '../../test/helpers/http';
import { startTestNode, uniqueNamespace, type TestNode } from '../../test/helpers/node';
import { FLUSH_INTERVAL_MS } from './flusher';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
jest.setTimeout(90_000);

const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two polling replicas over the real NATS server, each behind its own gateway (the gateway
 * prefers its local polling replica): what one replica binds, the other enforces; heartbeats
 * seen by either end up in state; a tunnel flag set on one is answered identically by both.
 */
describe('polling replicas over NATS', () => {
  const namespace = uniqueNamespace('preps');
  // One state replica: it need not elect through Redis (a lease there could lapse while the other
  // node in this same process generates its TLS certificate).
  const shared = { namespace, transporter: NATS_URL, election: 'local' as const };
  let a: TestNode;
  let b: TestNode;
  let token: string;

  const checkin = (node: TestNode, id: number, edgeId: string, extra: Record<string, string> = {}) =>
    api(node.url, 'GET', `/api/endpoints/${id}/edge/status`, { headers: { 'X-PortainerAgent-EdgeID': edgeId, 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1', ...extra } });
  /** Events cross NATS asynchronously: poll until the replica has seen the change. */
  const eventually = async (check: () => Promise<boolean>, what: string) => {
    const until = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };

  beforeAll(async () => {
    a = await startTestNode({ ...shared, nodeID: `${namespace}-a`, services: ['gateway', 'state', 'rbac', 'polling'] });
    b = await startTestNode({ ...shared, nodeID: `${namespace}-b`, services: ['gateway', 'polling'] });
    await eventually(async () => (await api(a.url, 'GET', '/api/users/admin/check')).status === 404, 'rbac and state to answer');
    expect((await api(a.url, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    token = (await api(a.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  it('shares bindings, heartbeats and tunnel flags between replicas', async () => {
    const created = await api(a.url, 'POST', '/api/endpoints', { token, body: { Name: 'site-r', EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' } });
    expect(created.status).toBe(200);
    const id = created.body.Id as number;

    // Replica B learns of the new environment from environment.changed, then binds agent-1.
    await eventually(async () => (await checkin(b, id, 'agent-1')).status === 200, 'replica B to know the environment');
    // Replica A learns of the binding: agent-2 is refused there too.
    await eventually(async () => (await checkin(a, id, 'agent-2')).status === 403, 'replica A to refuse another agent');
    expect((await checkin(a, id, 'agent-1')).status).toBe(200);

    // Heartbeats seen only by B end up in state.
    const stored = () => call(a.node.broker, 'state.getEnvironment', { id }).then((e) => e.LastCheckInDate);
    const before = await stored();
    while (Math.floor(Date.now() / 1000) <= before) await sleep(100);
    expect((await checkin(b, id, 'agent-1')).status).toBe(200);
    const seen = Math.floor(Date.now() / 1000);
    await sleep(FLUSH_INTERVAL_MS + 1500);
    expect(await stored()).toBeGreaterThanOrEqual(seen);

    // A tunnel flag set through replica A is answered by both, with the same bytes and ETag.
    await call(a.node.broker, 'polling.setTunnel', { id, status: 'REQUIRED', port: 50123, credentials: 'user1234:pass5678', version: 1 }, { nodeID: `${namespace}-a` });
    await eventually(async () => (await checkin(b, id, 'agent-1')).body?.status === 'REQUIRED', 'replica B to say REQUIRED');
    const [ra, rb] = [await checkin(a, id, 'agent-1'), await checkin(b, id, 'agent-1')];
    expect(ra.text).toBe(rb.text);
    expect(ra.headers.etag).toBe(rb.headers.etag);
    expect(decryptCredentials(rb.body.credentials, 'agent-1')).toBe('user1234:pass5678');

    // Re-pairing through the API is seen by both replicas.
    expect((await api(b.url, 'DELETE', `/api/endpoints/${id}/association`, { token })).status).toBe(200);
    await eventually(async () => (await checkin(a, id, 'agent-2')).status === 200, 'agent-2 to bind after the association was cleared');
    await eventually(async () => (await checkin(b, id, 'agent-1')).status === 403, 'replica B to refuse the old agent');
    // The old agent's tunnel credentials are not offered to the new one.
    expect((await checkin(b, id, 'agent-2')).body).toMatchObject({ status: 'IDLE', credentials: '' });
  });
});
