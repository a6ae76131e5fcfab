import net, { type AddressInfo } from 'node:net';
import type { Tunnel } from '../../agent/tunnel';
import { TunnelRefusedError, dialTunnel, type TunnelRoute } from '../../shared/tunnel';
import { request, routeOf, startHttpUpstream, type Upstream } from './test-fixtures';
import { startTunnelServer, type TestTunnelServer } from './test-server';

jest.setTimeout(30_000);

/**
 * The data listener lets in only a connection that names a connected tunnel with that tunnel's
 * token, and opens no channel to an agent for anything else: real server, real agent client (which
 * counts the channels it is asked for), real upstream.
 */
describe('tunnel data listener: who gets a channel', () => {
  let node: TestTunnelServer;
  let upstream: Upstream;
  let tunnel: Tunnel;
  let route: TunnelRoute;

  beforeAll(async () => {
    node = await startTunnelServer();
    upstream = await startHttpUpstream();
    ({ tunnel, route } = await node.connect(1, 'data-test', { targetPort: upstream.port }));
  });

  afterAll(async () => {
    await node.close();
    await upstream.close();
  });

  it('refuses a wrong token, another tunnel\'s port, a tunnel not connected and an unknown port, opening nothing', async () => {
    const notConnected = node.registry.open(2).port;
    const before = tunnel.activity.connections;
    const refused = new TunnelRefusedError('unknown tunnel or wrong token');
    await expect(dialTunnel({ ...route, token: `${route.token.slice(0, -1)}${route.token.endsWith('A') ? 'B' : 'A'}` })).rejects.toThrow(refused);
    await expect(dialTunnel({ ...route, port: notConnected })).rejects.toThrow(refused);
    await expect(dialTunnel({ ...routeOf(node.registry, 2, 'data-test', route.data) })).rejects.toThrow(refused);
    await expect(dialTunnel({ ...route, port: route.port === 65535 ? 1024 : route.port + 1 })).rejects.toThrow(refused);
    expect(tunnel.activity.connections).toBe(before);
    expect((await request(route, 'GET', '/hello')).status).toBe(200);
    expect(tunnel.activity.connections).toBe(before + 1);
  });

  it('answers anything but a preamble with ERR and closes', async () => {
    const before = tunnel.activity.connections;
    for (const garbage of ['GET / HTTP/1.1\r\n\r\n', `CAPSTAN-TUNNEL/1 ${route.port}\n`, `${'x'.repeat(300)}\n`, `CAPSTAN-TUNNEL/1 ${route.port} ${route.token}`]) {
      expect(await rawExchange(route.data.port, garbage)).toBe('ERR malformed preamble\n');
    }
    expect(tunnel.activity.connections).toBe(before);
  });

  it('is not the agents\' port, and the agents\' port is no way in: it answers the preamble as the HTTP server it is', async () => {
    const agentsPort = (node.server.address() as AddressInfo).port;
    expect(route.data.port).not.toBe(agentsPort);
    await expect(dialTunnel({ ...route, data: { host: '127.0.0.1', port: agentsPort } })).rejects.toThrow(/unexpected answer "HTTP\/1.1 400/);
  });
});

/** Sends `text` to 127.0.0.1:`port`, shuts down writing, and collects the answer until the far end closes. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.end(text));
    const parts: Buffer[] = [];
    socket.on('data', (b: Buffer) => parts.push(b));
    socket.on('end', () => resolve(Buffer.concat(parts).toString()));
    socket.on('error', reject);
  });
}
