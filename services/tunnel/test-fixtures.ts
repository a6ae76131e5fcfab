import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import { dialTunnel, tunnelTarget, type TunnelHttpAgent, type TunnelRoute } from '../../shared/tunnel';
import type { TunnelRegistry } from './registry';

/**
 * Test fixtures for the tunnel: real upstreams an agent forwards to, and plain clients that reach
 * them through a tunnel. No mocks: every byte crosses real sockets and channels.
 */

/**
 * Where a fixture's request goes: a port on 127.0.0.1 (an upstream, the tunnel server), or the agent
 * behind a tunnel's route — through its node's data listener, one connection per request, unless
 * a {@link TunnelHttpAgent} is given, which picks the way as the gateway's does.
 */
export type Reach = number | TunnelRoute;

/** The route of environment `id`'s tunnel in `registry`, as `tunnel.ensureTunnel` would answer it. */
export function routeOf(registry: TunnelRegistry, id: number, node: string, data: TunnelRoute['data']): TunnelRoute {
  return { ...registry.route(id)!, node, data };
}

function reach(to: Reach, agent: http.Agent | false): http.RequestOptions {
  if (typeof to === 'number') return { host: '127.0.0.1', port: to, agent };
  if (agent) return tunnelTarget(to, agent as TunnelHttpAgent);
  return { host: '127.0.0.1', port: to.port, createConnection: (_o, cb) => void dialTunnel(to).then((s) => cb(null, s), (err: Error) => cb(err, undefined as never)) };
}

/** A listening server and how to stop it; `serve` hands it a connection that did not come through the port. */
export interface Upstream { port: number; serve(socket: Duplex): void; close(): Promise<void> }

const CHUNK = crypto.randomBytes(64 * 1024);

/** Deterministic bytes: `total` bytes of a fixed random 64 KiB block, streamed. */
export function patternStream(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(CHUNK.length, total - sent);
      sent += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

/** SHA-256 of what `patternStream(total)` yields. */
export function patternDigest(total: number): string {
  const h = crypto.createHash('sha256');
  for (let sent = 0; sent < total; sent += CHUNK.length) h.update(CHUNK.subarray(0, Math.min(CHUNK.length, total - sent)));
  return h.digest('hex');
}

function listen(server: net.Server): Promise<Upstream> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as AddressInfo).port,
    serve: (socket) => void server.emit('connection', socket),
    close: () => new Promise<void>((r) => { (server as http.Server).closeAllConnections?.(); server.close(() => r()); }),
  })));
}

/**
 * HTTP upstream: `GET /hello`, `POST /echo` (streams the body back), `GET /blob?bytes=N` (N pattern
 * bytes), `POST /sink` (answers `{bytes, sha256}` of the body), and any upgrade to `tcp`, which
 * counts what it is sent until the client's FIN and then answers `got <n> bytes`.
 */
export function startHttpUpstream(): Promise<Upstream> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    if (url.pathname === '/hello') return void res.end('hello from upstream');
    if (url.pathname === '/echo') return void req.pipe(res);
    if (url.pathname === '/blob') {
      const total = Number(url.searchParams.get('bytes'));
      res.writeHead(200, { 'content-length': String(total) });
      return void patternStream(total).pipe(res);
    }
    if (url.pathname === '/sink') {
      const h = crypto.createHash('sha256');
      let bytes = 0;
      req.on('data', (b: Buffer) => { bytes += b.length; h.update(b); });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: h.digest('hex') })));
      return;
    }
    res.writeHead(404).end();
  });
  // `Upgrade: tcp` (Docker's hijack): reads until the client's FIN, then answers `got <n> bytes`.
  server.on('upgrade', (_req, socket: net.Socket) => {
    socket.allowHalfOpen = true;
    socket.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    let n = 0;
    socket.on('data', (b: Buffer) => { n += b.length; });
    socket.on('end', () => socket.end(`got ${n} bytes`));
    socket.on('error', () => socket.destroy());
  });
  return listen(server);
}

/**
 * Raw TCP upstream that reads until the client's FIN, then answers `got <n> bytes` and closes:
 * it only works through a tunnel that carries half-close.
 */
export function startHalfCloseUpstream(): Promise<Upstream> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let n = 0;
    socket.on('data', (b: Buffer) => { n += b.length; });
    socket.on('end', () => socket.end(`got ${n} bytes`));
    socket.on('error', () => socket.destroy());
  });
  return listen(server);
}

/** What {@link request} answers: the status, the body, and the socket the request went over. */
export interface Answer { status: number; body: Buffer; socket: net.Socket; reused: boolean }

/** One HTTP request, the body streamed; without connection reuse unless an `agent` is given. */
export function request(to: Reach, method: string, path: string, body?: Readable | Buffer, agent: http.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...reach(to, agent), method, path, timeout: 30_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), socket: req.socket!, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    if (Buffer.isBuffer(body)) req.end(body);
    else if (body) body.pipe(req);
    else req.end();
  });
}

/** Streams a response through and returns only its size and digest (for big transfers). */
export function download(to: Reach, path: string, agent: http.Agent | false = false): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    http.get({ ...reach(to, agent), path }, (res) => {
      const h = crypto.createHash('sha256');
      let bytes = 0;
      res.on('data', (b: Buffer) => { bytes += b.length; h.update(b); });
      res.on('end', () => resolve({ bytes, sha256: h.digest('hex') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/**
 * Over a raw connection to the agent behind `route` (through the data listener): sends `payload`,
 * shuts down writing, and collects everything until the far end closes.
 */
export async function halfCloseExchange(route: TunnelRoute, payload: Buffer): Promise<string> {
  const socket = await dialTunnel(route);
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    socket.on('data', (b: Buffer) => parts.push(b));
    socket.on('end', () => resolve(Buffer.concat(parts).toString()));
    socket.on('error', reject);
    socket.end(payload);
  });
}
