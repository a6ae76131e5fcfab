import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Tunnel } from '../../agent/tunnel';
import { TunnelHttpAgent, localTunnels, registerLocalTunnels, tunnelTarget, type TunnelRoute } from '../../shared/tunnel';
import { waitFor } from '../../test/helpers/processes';
import { download, patternDigest, patternStream, request, startHttpUpstream, type Upstream } from './test-fixtures';
import { startTunnelServer, type TestTunnelServer } from './test-server';

jest.setTimeout(60_000);

/**
 * A caller in the process that holds a tunnel (the gateway in the embedded shape) reaches the
 * agent over SSH channels opened directly, not through the node's data listener: real server,
 * real agent client, real upstream, and node:http on the channel itself. The agent end either
 * dials its target over TCP or, as the edge agent does, hands each channel to its HTTP server
 * in-process. The same HTTP agent takes a route to a node in another process through that node's
 * data listener.
 */
describe.each([
  ['dials its upstream over TCP', false],
  ['serves channels in-process', true],
])('tunnel held by this process, HTTP straight over SSH channels; the agent %s', (_mode, inProcess) => {
  let activity = 0;
  let node: TestTunnelServer;
  let upstream: Upstream;
  let tunnel: Tunnel;
  let port: number;
  let route: TunnelRoute;
  let agent: TunnelHttpAgent;
  let unregister: () => void;
  const nodeID = `local-test-${inProcess}`;

  beforeAll(async () => {
    node = await startTunnelServer({ onActivity: () => void activity++ });
    unregister = registerLocalTunnels(nodeID, (p, t) => node.registry.openSocket(p, t));
    upstream = await startHttpUpstream();
    ({ tunnel, route } = await node.connect(1, nodeID, { targetPort: upstream.port, serve: inProcess ? (socket) => upstream.serve(socket) : undefined }));
    port = route.port;
    agent = new TunnelHttpAgent({ keepAlive: true });
  });

  afterAll(async () => {
    agent.destroy();
    unregister();
    await node.close();
    await upstream.close();
  });

  it('answers over a channel, reuses it for the next request, and counts the bytes as use', async () => {
    const before = { activity, connections: tunnel.activity.connections };
    const first = await request(route, 'GET', '/hello', undefined, agent);
    const second = await request(route, 'GET', '/hello', undefined, agent);
    expect(first).toMatchObject({ status: 200, body: Buffer.from('hello from upstream'), reused: false });
    expect(second).toMatchObject({ status: 200, reused: true });
    expect(first.socket).toBe(second.socket);
    // The channel itself, not a TCP connection to the data listener.
    expect(first.socket).not.toBeInstanceOf(net.Socket);
    // One channel, so the agent served one connection for both requests.
    expect(tunnel.activity.connections - before.connections).toBe(1);
    expect(tunnel.activity.bytesIn).toBeGreaterThan(0);
    expect(tunnel.activity.bytesOut).toBeGreaterThan(0);
    expect(activity).toBeGreaterThan(before.activity + 2);
  });

  it('streams 20 MB each way intact, several requests at once', async () => {
    const body = crypto.randomBytes(20 * 1024 * 1024);
    const [echo, down, up] = await Promise.all([
      request(route, 'POST', '/echo', body, agent),
      download(route, `/blob?bytes=${20 * 1024 * 1024}`, agent),
      request(route, 'POST', '/sink', patternStream(20 * 1024 * 1024), agent),
    ]);
    expect(echo.body.equals(body)).toBe(true);
    expect(down).toEqual({ bytes: 20 * 1024 * 1024, sha256: patternDigest(20 * 1024 * 1024) });
    expect(JSON.parse(up.body.toString())).toEqual({ bytes: 20 * 1024 * 1024, sha256: patternDigest(20 * 1024 * 1024) });
  });

  it('carries a hijacked connection with half-close: the answer comes after the client stopped writing', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ ...tunnelTarget(route, agent), method: 'POST', path: '/exec/start', headers: { connection: 'Upgrade', upgrade: 'tcp' } });
      req.on('upgrade', (_res, socket) => {
        const parts: Buffer[] = [];
        socket.on('data', (b: Buffer) => parts.push(b));
        socket.on('end', () => resolve(Buffer.concat(parts).toString()));
        socket.end(Buffer.alloc(100_000, 1));
      });
      req.on('error', reject);
      req.end();
    });
    expect(answer).toBe('got 100000 bytes');
  });

  it('refuses a wrong token in-process too, opening no channel', async () => {
    const before = tunnel.activity.connections;
    await expect(request({ ...route, token: 'x'.repeat(43) }, 'GET', '/hello', undefined, agent)).rejects.toThrow(/no connected tunnel/);
    expect(tunnel.activity.connections).toBe(before);
  });

  it('takes a route to a node in another process through that node\'s data listener, pooled apart from the in-process one', async () => {
    const remote = { ...route, node: 'some-other-process' };
    expect(localTunnels(remote.node)).toBeUndefined();
    const first = await request(remote, 'GET', '/hello', undefined, agent);
    const second = await request(remote, 'GET', '/hello', undefined, agent);
    expect(first).toMatchObject({ status: 200, body: Buffer.from('hello from upstream'), reused: false });
    expect(second).toMatchObject({ status: 200, reused: true });
    expect(first.socket).toBeInstanceOf(net.Socket);
    expect(first.socket).toBe(second.socket);
    expect((await request(route, 'GET', '/hello', undefined, agent)).socket).not.toBe(first.socket);
    expect(agent.getName(tunnelTarget(remote, agent))).not.toBe(agent.getName(tunnelTarget(route, agent)));
  });

  it('forgets the tunnel once its session ends', async () => {
    expect(node.registry.authorize(port, route.token)).toBeDefined();
    const entry = node.registry.remove(1)!;
    await entry.session!.close();
    expect(node.registry.authorize(port, route.token)).toBeUndefined();
    // The pooled channels close with their SSH connection and leave the pool, the piped sockets too.
    await waitFor(async () => !Object.values(agent.freeSockets).flat().length, 5000, 'the pooled connections to close');
    await expect(request(route, 'GET', '/hello', undefined, agent)).rejects.toThrow(/no connected tunnel/);
    await expect(request({ ...route, node: 'some-other-process' }, 'GET', '/hello', undefined, agent)).rejects.toThrow(/unknown tunnel or wrong token/);
  });
});
