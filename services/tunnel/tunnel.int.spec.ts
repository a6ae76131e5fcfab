import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { ServiceBroker } from 'moleculer';
import { Client } from 'ssh2';
import WebSocket from 'ws';
import { openTunnel, type OpenTunnelOptions, type Tunnel } from '../../agent/tunnel';
import { loadConfig } from '../../shared/config';
import { call } from '../../shared/contracts';
import { createBroker } from '../../shared/moleculer';
import {
  CONFIG_REQUEST, TunnelEvents, TunnelRefusedError, WebSocketDuplex, decodeRemote, dialTunnel, encodeConfig, sendGlobalRequest,
  type TunnelClosedEvent, type TunnelOpenedEvent, type TunnelRoute,
} from '../../shared/tunnel';
import { tempDataDir, uniqueNamespace } from '../../test/helpers/ids';
import { waitFor } from '../../test/helpers/processes';
import { stateService } from '../state';
import {
  download, halfCloseExchange, patternDigest, patternStream, request, startHalfCloseUpstream, startHttpUpstream, type Upstream,
} from './test-fixtures';
import { tunnelService } from '.';

jest.setTimeout(120_000);

/**
 * The tunnel service in a broker of its own, a real agent client and real upstreams. Requests go
 * through the service's data listener, as from a gateway in another process.
 */
describe('tunnel service: chisel v3 reverse tunnel, real server, real client, real upstream', () => {
  let dataDir: string;
  let broker: ServiceBroker;
  let serverAddr: string;
  let fingerprint: string;
  let upstream: Upstream;
  let halfCloseUpstream: Upstream;
  const events: Array<{ name: string; payload: TunnelOpenedEvent | TunnelClosedEvent }> = [];
  const tunnels: Tunnel[] = [];

  beforeAll(async () => {
    dataDir = tempDataDir();
    const config = loadConfig({}, { dataDir, namespace: uniqueNamespace('tunnel'), services: ['state', 'tunnel'], logLevel: 'warn', tunnelPort: 0, host: '127.0.0.1' });
    broker = createBroker(config);
    broker.createService(stateService(config));
    broker.createService(tunnelService(config));
    broker.createService({
      name: 'tunnel-watch',
      events: {
        [TunnelEvents.opened]: { handler: (ctx: { params: TunnelOpenedEvent }) => void events.push({ name: 'opened', payload: ctx.params }) },
        [TunnelEvents.closed]: { handler: (ctx: { params: TunnelClosedEvent }) => void events.push({ name: 'closed', payload: ctx.params }) },
      },
    });
    await broker.start();
    serverAddr = `127.0.0.1:${(await call(broker, 'tunnel.address', {})).port}`;
    fingerprint = (await call(broker, 'state.tunnelFingerprint', {})).fingerprint;
    upstream = await startHttpUpstream();
    halfCloseUpstream = await startHalfCloseUpstream();
  });

  afterAll(async () => {
    await Promise.all(tunnels.map((t) => t.close()));
    await broker.stop();
    await upstream.close();
    await halfCloseUpstream.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** Asks the service for a tunnel, connects an agent client to it, and gets its route. */
  async function connect(id: number, overrides: Partial<OpenTunnelOptions> = {}): Promise<{ tunnel: Tunnel; port: number; credentials: string; route: TunnelRoute }> {
    const { port, credentials } = await call(broker, 'tunnel.openTunnel', { id });
    const tunnel = await openTunnel({
      serverAddr, fingerprint, credentials, remotePort: port, targetHost: '127.0.0.1', targetPort: upstream.port, keepaliveMs: 5000, ...overrides,
    });
    tunnels.push(tunnel);
    // Connected already, so no check-in is needed: the route comes at once.
    const route = await call(broker, 'tunnel.ensureTunnel', { id });
    return { tunnel, port, credentials, route };
  }

  it('forwards HTTP through the data listener to the agent\'s upstream and reports the tunnel open', async () => {
    const { tunnel, port, route } = await connect(1);
    expect(route).toEqual({ port, node: broker.nodeID, data: { host: '127.0.0.1', port: expect.any(Number) }, token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    const res = await request(route, 'GET', '/hello');
    expect(res).toMatchObject({ status: 200, body: Buffer.from('hello from upstream') });
    const status = await call(broker, 'tunnel.status', { id: 1 });
    expect(status).toEqual({ open: true, port, lastActivity: expect.any(Number) });
    expect(Date.now() - status.lastActivity).toBeLessThan(5000);
    expect(port).toBeGreaterThanOrEqual(1024);
    expect(port).toBeLessThanOrEqual(65535);
    expect(events).toContainEqual({ name: 'opened', payload: { id: 1, port } });
    expect(tunnel.activity.connections).toBe(1);
    expect(tunnel.activity.bytesIn).toBeGreaterThan(0);
    expect(tunnel.activity.bytesOut).toBeGreaterThan(0);
  });

  it('streams 20 MB both ways with every byte intact, several requests at once', async () => {
    const { route } = await connect(2);
    const body = crypto.randomBytes(20 * 1024 * 1024);
    const [echo, down, up] = await Promise.all([
      request(route, 'POST', '/echo', body),
      download(route, `/blob?bytes=${20 * 1024 * 1024}`),
      request(route, 'POST', '/sink', patternStream(20 * 1024 * 1024)),
    ]);
    expect(echo.body.length).toBe(body.length);
    expect(echo.body.equals(body)).toBe(true);
    expect(down).toEqual({ bytes: 20 * 1024 * 1024, sha256: patternDigest(20 * 1024 * 1024) });
    expect(JSON.parse(up.body.toString())).toEqual({ bytes: 20 * 1024 * 1024, sha256: patternDigest(20 * 1024 * 1024) });
  });

  it('binds nothing to a tunnel\'s port: the agent connects while another program listens on it, and calls reach the agent', async () => {
    const { port, credentials } = await call(broker, 'tunnel.openTunnel', { id: 40 });
    const squatter = net.createServer((s) => s.end('HTTP/1.1 418 Not the agent\r\ncontent-length: 0\r\n\r\n'));
    // Something else may hold the port already, which makes the same point.
    await new Promise<void>((r) => squatter.once('error', () => r()).listen(port, '127.0.0.1', () => r()));
    try {
      tunnels.push(await openTunnel({ serverAddr, fingerprint, credentials, remotePort: port, targetHost: '127.0.0.1', targetPort: upstream.port }));
      const route = await call(broker, 'tunnel.ensureTunnel', { id: 40 });
      expect(route.port).toBe(port);
      expect(await request(route, 'GET', '/hello')).toMatchObject({ status: 200, body: Buffer.from('hello from upstream') });
    } finally {
      squatter.close();
    }
  });

  it('carries half-close: the upstream answers after the client shut down its writing side', async () => {
    const { route } = await connect(3, { targetPort: halfCloseUpstream.port });
    expect(await halfCloseExchange(route, Buffer.alloc(100_000, 1))).toBe('got 100000 bytes');
  });

  it('refuses a server whose key does not match the pinned fingerprint', async () => {
    const { port, credentials } = await call(broker, 'tunnel.openTunnel', { id: 4 });
    const wrong = crypto.createHash('sha256').update('another server').digest('base64');
    await expect(openTunnel({ serverAddr, fingerprint: wrong, credentials, remotePort: port, targetHost: '127.0.0.1', targetPort: upstream.port }))
      .rejects.toThrow('tunnel server fingerprint mismatch');
    // The credentials were never presented to the wrong server, so they still work here.
    await expect(connect(4)).resolves.toBeDefined();
  });

  it('refuses a wrong password, and reused credentials', async () => {
    const { port, credentials } = await call(broker, 'tunnel.openTunnel', { id: 5 });
    const user = credentials.split(':')[0];
    const base = { serverAddr, fingerprint, remotePort: port, targetHost: '127.0.0.1', targetPort: upstream.port };
    await expect(openTunnel({ ...base, credentials: `${user}:wrongpwd` })).rejects.toThrow('refused the credentials');
    const first = await openTunnel({ ...base, credentials });
    tunnels.push(first);
    await expect(openTunnel({ ...base, credentials })).rejects.toThrow('refused the credentials');
    expect((await request(await call(broker, 'tunnel.ensureTunnel', { id: 5 }), 'GET', '/hello')).status).toBe(200);
  });

  it('refuses a remote outside the one the credentials were issued for, and the tunnel stays closed', async () => {
    const { port, credentials } = await call(broker, 'tunnel.openTunnel', { id: 6 });
    const other = port === 60000 ? 60001 : 60000;
    await expect(openTunnel({ serverAddr, fingerprint, credentials, remotePort: other, targetHost: '127.0.0.1', targetPort: upstream.port }))
      .rejects.toThrow(`refused the tunnel configuration R:${other}`);
    expect((await call(broker, 'tunnel.status', { id: 6 })).open).toBe(false);
  });

  it('closeTunnel closes the agent\'s session, revokes the credentials, and the route goes nowhere', async () => {
    const { tunnel, port, credentials, route } = await connect(7);
    expect((await request(route, 'GET', '/hello')).status).toBe(200);
    expect(await call(broker, 'tunnel.closeTunnel', { id: 7 })).toEqual({ closed: true });
    await expect(dialTunnel(route)).rejects.toThrow(new TunnelRefusedError('unknown tunnel or wrong token'));
    await expect(tunnel.closed).resolves.toMatchObject({ reason: 'error' });
    expect(await call(broker, 'tunnel.status', { id: 7 })).toEqual({ open: false, port: 0, lastActivity: 0 });
    expect(events).toContainEqual({ name: 'closed', payload: { id: 7, port, reason: 'closed' } });
    await expect(openTunnel({ serverAddr, fingerprint, credentials, remotePort: port, targetHost: '127.0.0.1', targetPort: upstream.port }))
      .rejects.toThrow('refused the credentials');
    expect(await call(broker, 'tunnel.closeTunnel', { id: 7 })).toEqual({ closed: false });
  });

  it('after the agent drops, issues fresh credentials for the same port and the tunnel comes back', async () => {
    const { tunnel, port, credentials, route } = await connect(8);
    await tunnel.close();
    await waitFor(async () => events.some((e) => e.name === 'closed' && e.payload.id === 8), 5000, 'the closed event');
    expect(events).toContainEqual({ name: 'closed', payload: { id: 8, port, reason: 'dropped' } });
    expect((await call(broker, 'tunnel.status', { id: 8 })).open).toBe(false);
    await expect(dialTunnel(route)).rejects.toThrow(TunnelRefusedError);
    const again = await connect(8);
    expect(again.port).toBe(port);
    expect(again.credentials).not.toBe(credentials);
    expect((await request(route, 'GET', '/hello')).status).toBe(200);
  });

  it('answers plain HTTP like chisel and refuses a WebSocket upgrade without chisel-v3', async () => {
    const port = Number(serverAddr.split(':')[1]);
    expect((await request(port, 'GET', '/health')).body.toString()).toBe('OK\n');
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': crypto.randomBytes(16).toString('base64'), 'sec-websocket-protocol': 'chisel-v2' } });
      req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
  });

  it('accepts Go chisel\'s identification line `SSH-chisel-v3-client` (no "2.0-") and its signed key exchange', async () => {
    const { port, credentials } = await call(broker, 'tunnel.openTunnel', { id: 10 });
    const ws = new WebSocket(`ws://${serverAddr}`, 'chisel-v3');
    const duplex = new WebSocketDuplex(ws);
    await new Promise((r) => ws.once('open', r));
    // Make ssh2 speak exactly like Go's chisel client: that line on the wire and in the exchange hash.
    const write = duplex.write.bind(duplex) as (c: Buffer, cb?: () => void) => boolean;
    (duplex as unknown as { write: typeof write }).write = (c: Buffer, cb?: () => void) =>
      write(c.toString('latin1').startsWith('SSH-2.0-chisel-v3-client') ? Buffer.from('SSH-chisel-v3-client\r\n') : c, cb);
    const client = new Client();
    const ready = new Promise((resolve, reject) => { client.once('ready', () => resolve(undefined)); client.once('error', reject); });
    client.connect({ sock: duplex as never, username: credentials.split(':')[0], password: credentials.split(':')[1], ident: 'chisel-v3-client' });
    (client as unknown as { _protocol: { _identRaw: Buffer } })._protocol._identRaw = Buffer.from('SSH-chisel-v3-client');
    await ready;
    const reply = await sendGlobalRequest(client, CONFIG_REQUEST, encodeConfig({ Version: '1.10.1', Remotes: [decodeRemote(`R:${port}:127.0.0.1:${upstream.port}`)] }));
    expect(reply.ok).toBe(true);
    client.end();
  });

  it('moves 100 MB through the tunnel each way (throughput figure for the benchmark)', async () => {
    const { route } = await connect(9);
    const size = 100 * 1024 * 1024;
    await download(route, `/blob?bytes=${20 * 1024 * 1024}`); // warm-up: JIT and TCP windows
    const direct = await timed(() => download(upstream.port, `/blob?bytes=${size}`));
    const down = await timed(() => download(route, `/blob?bytes=${size}`));
    const up = await timed(() => request(route, 'POST', '/sink', patternStream(size)));
    expect(down.result).toEqual({ bytes: size, sha256: patternDigest(size) });
    expect(JSON.parse(up.result.body.toString()).bytes).toBe(size);
    const mbps = (ms: number) => (size / 1024 / 1024 / (ms / 1000)).toFixed(1);
    console.log(`tunnel throughput, 100 MiB over loopback: data listener->server->agent->upstream download ${mbps(down.ms)} MiB/s (${down.ms} ms), `
      + `upload ${mbps(up.ms)} MiB/s (${up.ms} ms); direct to upstream ${mbps(direct.ms)} MiB/s (${direct.ms} ms)`);
  });
});

async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const t0 = performance.now();
  const result = await fn();
  return { result, ms: Math.round(performance.now() - t0) };
}

