import WebSocket from 'ws';
import { encodeEdgeStatus, etag as etagOf } from '../../shared/protocol';
import { EdgeTestbed } from '../helpers/edge-testbed';
import { api } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { waitFor, type CapstanProcess } from '../helpers/processes';

const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;
jest.setTimeout(180_000);

const PORTAINER_HEADERS = { 'X-PortainerAgent-EdgeID': 'raw-portainer', 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1', 'X-PortainerAgent-TimeZone': 'Local', 'X-PortainerAgent-Update-ID': '0' };

/** The agent's JSON log lines (LOG_LEVEL=debug), from `from` on. */
function logLines(agent: CapstanProcess, from = 0): { msg: string; status?: string; time: number }[] {
  return agent.output.slice(from).flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
}
const count = (agent: CapstanProcess, msg: string, from = 0) => logLines(agent, from).filter((l) => l.msg === msg).length;
const isPushedUp = (agent: CapstanProcess) => {
  const lines = logLines(agent);
  const up = lines.findLastIndex((l) => l.msg.startsWith('push channel up'));
  return up >= 0 && up > lines.findLastIndex((l) => l.msg.startsWith('push channel down'));
};
/** Pushed, and the tunnel of the first snapshot (every new environment gets one) closed again: the environment is idle. */
const isIdle = (agent: CapstanProcess) => {
  const lines = logLines(agent);
  const opened = lines.findLastIndex((l) => l.msg === 'tunnel open');
  const closed = lines.findLastIndex((l) => l.msg === 'closing tunnel' || l.msg === 'tunnel closed');
  return isPushedUp(agent) && opened >= 0 && closed > opened;
};

/** Opens a push WebSocket by hand; resolves with the HTTP status of a refused upgrade, or the open socket. */
function rawPush(url: string, id: number, headers: Record<string, string>, protocol = 'capstan-push.v1'): Promise<{ status: number; ws?: WebSocket; first?: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('https:', 'wss:')}/api/endpoints/${id}/edge/push`, protocol, { headers, rejectUnauthorized: false });
    const first = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('open', () => resolve({ status: 101, ws, first }));
    ws.once('error', (err) => (ws.readyState === WebSocket.CLOSED ? undefined : reject(err)));
  });
}

/**
 * The push channel end to end: real agent processes (standard and async) against an embedded
 * server, the host's real Docker engine behind them.
 */
withDocker('edge push channel', () => {
  const bed = new EdgeTestbed(`capstan-push-${process.pid}`);
  let standard: CapstanProcess; // check-in interval 30 s
  let fast: CapstanProcess; // check-in interval 1 s
  let envSlow: number;
  let envFast: number;

  beforeAll(async () => {
    // Idle tunnels close after 3 s, so each measurement starts without one.
    await bed.start({ tunnelIdleMs: 3000 });
    const a = await bed.createEnv('push-slow', { EdgeCheckinInterval: 30 });
    const b = await bed.createEnv('push-fast', { EdgeCheckinInterval: 1 });
    envSlow = a.Id;
    envFast = b.Id;
    standard = bed.startAgent(a.EdgeKey, 'push-slow-agent', { LOG_LEVEL: 'debug' });
    fast = bed.startAgent(b.EdgeKey, 'push-fast-agent', { LOG_LEVEL: 'debug' });
  });

  afterAll(() => bed.stop());

  it('opens the tunnel and answers the first Docker call in under a second with a 30 s check-in interval', async () => {
    await waitFor(async () => isIdle(standard), 60_000, 'the agent on the push channel with no tunnel open');
    const opensBefore = count(standard, 'tunnel open');
    const t0 = Date.now();
    const res = await api(bed.n.url, 'GET', `/api/endpoints/${envSlow}/docker/version`, { token: bed.token });
    const ms = Date.now() - t0;
    expect(`${res.status} ${res.text.slice(0, 200)}`).toMatch(/^200 /);
    expect(res.body.ApiVersion).toBeTruthy();
    expect(count(standard, 'tunnel open')).toBe(opensBefore + 1);
    process.stdout.write(`push: first Docker call on an idle environment (check-in interval 30 s) answered in ${ms} ms\n`);
    expect(ms).toBeLessThan(1000);
  });

  it('stops polling while pushed, and the environment stays online on the connection\'s heartbeats', async () => {
    await waitFor(async () => isIdle(fast), 60_000, 'the 1 s agent on the push channel, idle');
    const from = fast.output.length;
    // Longer than Portainer's online window for a 1 s interval (2 × 1 s + 20 s).
    await new Promise((r) => setTimeout(r, 24_000));
    expect(count(fast, 'checked in', from)).toBe(0);
    expect(isPushedUp(fast)).toBe(true);
    const env = await bed.getEnv(envFast);
    expect(env.Status).toBe(1);
    expect(Math.floor(Date.now() / 1000) - env.LastCheckInDate).toBeLessThanOrEqual(7);
  });

  it('leaves a Portainer check-in as it was: the same body and ETag, plus a header Portainer agents ignore', async () => {
    const env = await bed.createEnv('push-raw');
    const checkin = (ifNoneMatch?: string) => api(bed.n.url, 'GET', `/api/endpoints/${env.Id}/edge/status`, { headers: { ...PORTAINER_HEADERS, ...(ifNoneMatch ? { 'If-None-Match': ifNoneMatch } : {}) } });
    const first = await checkin();
    expect(first.status).toBe(200);
    const expected = encodeEdgeStatus({ status: 'IDLE', port: 0, schedules: [], checkin: 5, credentials: '', stacks: [] });
    expect(first.text).toBe(expected.json);
    expect(first.headers.etag).toBe(expected.etag);
    expect(first.headers['x-capstan-push']).toBe(`/api/endpoints/${env.Id}/edge/push`);
    // The reply may turn REQUIRED (the first snapshot wants a tunnel); once stable it is a 304 with the header.
    let last = first;
    for (let i = 0; i < 3 && last.status === 200; i++) {
      expect(last.headers.etag).toBe(etagOf(last.text));
      last = await checkin(String(last.headers.etag));
    }
    expect(last.status).toBe(304);
    expect(last.text).toBe('');
    expect(last.headers['x-capstan-push']).toBe(`/api/endpoints/${env.Id}/edge/push`);

    // The push upgrade is admitted exactly like a check-in.
    expect((await rawPush(bed.n.url, env.Id, { ...PORTAINER_HEADERS, 'X-PortainerAgent-EdgeID': 'intruder' })).status).toBe(403);
    expect((await rawPush(bed.n.url, 999_999, PORTAINER_HEADERS)).status).toBe(404);
    expect((await rawPush(bed.n.url, env.Id, PORTAINER_HEADERS, 'chisel-v3')).status).toBe(400);
    expect((await api(bed.n.url, 'GET', `/api/endpoints/${env.Id}/edge/push`)).status).toBe(426);
    const open = await rawPush(bed.n.url, env.Id, PORTAINER_HEADERS);
    expect(open.status).toBe(101);
    const msg = JSON.parse(await open.first!);
    const now = await checkin();
    expect(msg).toEqual({ type: 'status', etag: now.headers.etag, body: JSON.parse(now.text) });
    open.ws!.close();
  });

  it('with CAPSTAN_PUSH=0 offers no push: no header, no upgrade', async () => {
    let off: TestNode | undefined;
    try {
      off = await startTestNode({ push: false });
      await api(off.url, 'POST', '/api/users/admin/init', { body: { Username: 'admin', Password: 'a-long-password' } });
      const token = (await api(off.url, 'POST', '/api/auth', { body: { Username: 'admin', Password: 'a-long-password' } })).body.jwt;
      const env = await api(off.url, 'POST', '/api/endpoints', { token, body: { Name: 'no-push', EndpointCreationType: 4, URL: off.url } });
      const res = await api(off.url, 'GET', `/api/endpoints/${env.body.Id}/edge/status`, { headers: PORTAINER_HEADERS });
      expect(res.status).toBe(200);
      expect(res.headers['x-capstan-push']).toBeUndefined();
      expect(res.text).toBe(encodeEdgeStatus({ status: 'IDLE', port: 0, schedules: [], checkin: 5, credentials: '', stacks: [] }).json);
      expect((await rawPush(off.url, env.body.Id, PORTAINER_HEADERS)).status).toBe(404);
    } finally {
      await off?.stop();
    }
  });

  it('brings a queued command to a pushed async agent within about a second, with a 60 s command timer', async () => {
    const env = await bed.createEnv('push-async', { EdgeAsync: true, EdgePingInterval: 60, EdgeSnapshotInterval: 60, EdgeCommandInterval: 60 });
    const agent = bed.startAgent(env.EdgeKey, 'push-async-agent', { EDGE_ASYNC: '1', LOG_LEVEL: 'debug' });
    await waitFor(async () => isPushedUp(agent), 30_000, 'the async agent on the push channel');
    // Its first exchanges (snapshot, commands) are done.
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    const queued = await api(bed.n.url, 'POST', `/api/endpoints/${env.Id}/commands`, { token: bed.token, body: { Commands: [{ Type: 'dockerRequest', Method: 'GET', Path: '/version' }] } });
    expect(`${queued.status} ${queued.text.slice(0, 200)}`).toMatch(/^201 /);
    const seq = queued.body.Commands[0].Seq;
    let delivered = 0;
    const done = await waitFor(async () => {
      const c = (await api(bed.n.url, 'GET', `/api/endpoints/${env.Id}/commands/${seq}`, { token: bed.token })).body;
      if (!delivered && c.Status !== 'queued') delivered = Date.now() - t0;
      return c.Status === 'succeeded' || c.Status === 'failed' ? c : undefined;
    }, 10_000, 'the command to be run and acknowledged');
    const finished = Date.now() - t0;
    expect(done.Status).toBe('succeeded');
    process.stdout.write(`push: async command delivered ${delivered} ms and acknowledged ${finished} ms after queueing (command timer 60 s)\n`);
    expect(delivered).toBeLessThan(1500);
  });

  it('falls back to polling when the server goes away, and comes back to the push channel', async () => {
    const port = bed.n.node.gateway!.port;
    const { dataDir, tunnelPort, namespace } = bed.n.config;
    const from = fast.output.length;
    const fromSlow = standard.output.length;
    await bed.n.stop({ keepData: true });
    await waitFor(async () => count(fast, 'push channel down: polling again', from) > 0, 10_000, 'the agent to notice');
    // It polls at once while the server is down (its check-ins fail), then the server is back on the
    // same port and data. Which comes first after that, a poll or the push channel's reconnection,
    // is a race the agent may win either way: both are right.
    await waitFor(async () => logLines(fast, from).some((l) => l.msg.startsWith('cannot reach')), 10_000, 'a failed check-in by polling');
    bed.n = await startTestNode({ dataDir, httpsPort: port, tunnelPort, namespace, tunnelIdleMs: 3000 });
    await waitFor(async () => isPushedUp(fast), 70_000, 'the 1 s agent back on the push channel');
    await waitFor(async () => isPushedUp(standard) && count(standard, 'push channel up: not polling while it lasts', fromSlow) > 0, 70_000, 'the 30 s agent back on the push channel');
    // And push works again: the next first call is fast.
    await waitFor(async () => isIdle(standard), 30_000, 'no tunnel open');
    const t0 = Date.now();
    const res = await api(bed.n.url, 'GET', `/api/endpoints/${envSlow}/docker/version`, { token: bed.token });
    expect(res.status).toBe(200);
    process.stdout.write(`push: after the server restart, first Docker call answered in ${Date.now() - t0} ms\n`);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
