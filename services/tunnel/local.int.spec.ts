import crypto from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { openTunnel, type Tunnel } from '../../agent/tunnel';
import { generateTunnelKey, tunnelFingerprint } from '../../shared/crypto';
import { TunnelHttpAgent, localTunnel } from '../../shared/tunnel';
import { waitFor } from '../../test/helpers/processes';
import { ChiselServer } from './chisel-server';
import { TunnelRegistry } from './registry';
import { download, patternDigest, patternStream, request, startHttpUpstream, type Upstream } from './test-fixtures';

jest.setTimeout(60_000);

/**
 * A caller in the process that holds a tunnel (the gateway in the embedded shape) reaches the
 * agent over SSH channels opened directly, not through the tunnel's loopback listener: real
 * server, real agent client, real upstream, and node:http on the channel itself. The agent end
 * either dials its target over TCP or, as the edge agent does, hands each channel to its HTTP
 * server in-process.
 */
describe.each([
  ['dials its upstream over TCP', false],
  ['serves channels in-process', true],
])('tunnel held by this process, HTTP straight over SSH channels; the agent %s', (_mode, inProcess) => {
  const key = generateTunnelKey();
  const registry = new TunnelRegistry();
  const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };
  let activity = 0;
  let chisel: ChiselServer;
  let server: http.Server;
  let upstream: Upstream;
  let tunnel: Tunnel;
  let port: number;
  let agent: TunnelHttpAgent;

  beforeAll(async () => {
    chisel = new ChiselServer({
      hostKey: key, registry,
      hooks: { log: quiet, onActivity: () => void activity++, onListening: () => undefined, onEnded: () => undefined, onPortTaken: () => undefined },
    });
    server = http.createServer();
    server.on('upgrade', (req, socket, head) => chisel.handleUpgrade(req, socket, head));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    upstream = await startHttpUpstream();
    const opened = await registry.open(1);
    port = opened.port;
    tunnel = await openTunnel({
      serverAddr: `127.0.0.1:${(server.address() as AddressInfo).port}`, fingerprint: tunnelFingerprint(key),
      credentials: opened.credentials, remotePort: port, targetHost: '127.0.0.1', targetPort: upstream.port,
      serve: inProcess ? (socket) => upstream.serve(socket) : undefined,
    });
    agent = new TunnelHttpAgent({ keepAlive: true });
  });

  afterAll(async () => {
    agent.destroy();
    await tunnel.close();
    await chisel.close();
    await new Promise<void>((r) => server.close(() => r()));
    await upstream.close();
  });

  it('answers over a channel, reuses it for the next request, and counts the bytes as use', async () => {
    const before = { activity, connections: tunnel.activity.connections };
    const first = await request(port, 'GET', '/hello', undefined, agent);
    const second = await request(port, 'GET', '/hello', undefined, agent);
    expect(first).toMatchObject({ status: 200, body: Buffer.from('hello from upstream'), reused: false });
    expect(second).toMatchObject({ status: 200, reused: true });
    expect(first.socket).toBe(second.socket);
    // The channel itself, not a TCP connection to the tunnel's listener.
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
      request(port, 'POST', '/echo', body, agent),
      download(port, `/blob?bytes=${20 * 1024 * 1024}`, agent),
      request(port, 'POST', '/sink', patternStream(20 * 1024 * 1024), agent),
    ]);
    expect(echo.body.equals(body)).toBe(true);
    expect(down).toEqual({ bytes: 20 * 1024 * 1024, sha256: patternDigest(20 * 1024 * 1024) });
    expect(JSON.parse(up.body.toString())).toEqual({ bytes: 20 * 1024 * 1024, sha256: patternDigest(20 * 1024 * 1024) });
  });

  it('carries a hijacked connection with half-close: the answer comes after the client stopped writing', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/exec/start', agent, headers: { connection: 'Upgrade', upgrade: 'tcp' } });
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

  it('goes over TCP to an address no tunnel of this process listens on', async () => {
    expect(localTunnel('127.0.0.1', upstream.port)).toBeUndefined();
    const res = await request(upstream.port, 'GET', '/hello', undefined, agent);
    expect(res).toMatchObject({ status: 200, body: Buffer.from('hello from upstream') });
    expect(res.socket).toBeInstanceOf(net.Socket);
  });

  it('forgets the tunnel once its session ends', async () => {
    expect(localTunnel('127.0.0.1', port)).toBeDefined();
    const entry = registry.remove(1)!;
    await entry.session!.close();
    expect(localTunnel('127.0.0.1', port)).toBeUndefined();
    // The pooled channel closes with its SSH connection and leaves the pool.
    await waitFor(async () => !agent.freeSockets[`127.0.0.1:${port}:`]?.length, 5000, 'the pooled channel to close');
    await expect(request(port, 'GET', '/hello', undefined, agent)).rejects.toThrow(/ECONNREFUSED/);
  });
});
