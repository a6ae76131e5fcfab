/**
 * The tunnel storm's calls (main thread): N concurrent Docker API requests through the public API,
 * one per environment, each of which makes the server require that environment's tunnel and
 * answers once the agent's tunnel is open and its API answered through it.
 *
 * The N TLS connections are opened first (a few at a time, so that is no handshake storm of its
 * own), then every request is written at once: the firing is one moment, and the figures measure
 * the server's tunnel work, not how fast one client process can open 1,000 connections.
 */
import net from 'node:net';
import tls from 'node:tls';
import { ProtocolError, ResponseParser, serializeRequest, type HeaderPair } from './http1';

/** One storm call: start and end in ms since the run start, outcome `200`, `HTTP 504`, `timeout`, ... */
export interface StormCall {
  endpointId: number;
  /** Gateway it went to (index into the base URLs). */
  gateway: number;
  start: number;
  end: number;
  outcome: string;
}

export interface StormCalls {
  path: string;
  timeoutMs: number;
  /** When the requests were written, ms since the run start. */
  firedAt: number;
  /** How long opening the connections took before (ms). */
  connectMs: number;
  calls: StormCall[];
  /** First answer seen per failing outcome (the server's message). */
  messages: Record<string, string>;
}

/** Connections opened at a time before the firing. */
const CONNECT_CONCURRENCY = 50;

function classify(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection reset';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'EMFILE' || code === 'ENFILE') return 'fd limit';
  return `error ${code || err.name}`;
}

/** One TLS connection to the URL's host and port, resolved once its handshake is done. */
export function openTls(url: URL, insecure: boolean, context: tls.SecureContext): Promise<tls.TLSSocket> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host, port: Number(url.port || 443), servername: net.isIP(host) ? undefined : host, rejectUnauthorized: !insecure, secureContext: context });
    sock.once('secureConnect', () => {
      sock.removeListener('error', reject);
      resolve(sock);
    });
    sock.once('error', reject);
  });
}

/**
 * Opens one connection per environment (spread over the gateways), then writes
 * `GET /api/endpoints/{id}/docker{path}` on every one at once and resolves when all ended.
 */
export async function fireStorm(o: {
  bases: string[];
  auth: Record<string, string>;
  insecure: boolean;
  endpointIds: number[];
  path: string;
  timeoutMs: number;
  /** ms since the run start. */
  now: () => number;
  /** Called once the connections are open, just before the requests are written. */
  beforeFire?: () => void;
}): Promise<StormCalls> {
  const context = tls.createSecureContext();
  const urls = o.bases.map((b) => new URL(b));
  const t0 = o.now();
  const socks: Array<tls.TLSSocket | Error> = new Array(o.endpointIds.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, socks.length) }, async () => {
    while (next < socks.length) {
      const i = next++;
      socks[i] = await openTls(urls[i % urls.length], o.insecure, context).catch((err: Error) => err);
    }
  }));
  const connectMs = o.now() - t0;
  const messages: Record<string, string> = {};
  const auth = Object.entries(o.auth) as HeaderPair[];
  o.beforeFire?.();
  const firedAt = o.now();
  const calls = await Promise.all(o.endpointIds.map((endpointId, i) => new Promise<StormCall>((resolve) => {
    const gateway = i % urls.length;
    const start = o.now();
    const sock = socks[i];
    let ended = false;
    const done = (outcome: string, message?: string) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      if (message !== undefined) messages[outcome] ??= message;
      if (!(sock instanceof Error)) sock.destroy();
      resolve({ endpointId, gateway, start, end: o.now(), outcome });
    };
    const timer = setTimeout(() => done('timeout', `no answer within ${o.timeoutMs} ms`), o.timeoutMs);
    if (sock instanceof Error) return done(classify(sock), `could not connect: ${sock.message}`);
    const parser = new ResponseParser();
    sock.on('data', (chunk: Buffer) => {
      try {
        const [res] = parser.push(chunk);
        if (!res) return;
        if (res.status === 200) done('200');
        else done(`HTTP ${res.status}`, res.body.toString('utf8').slice(0, 300));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        done('protocol', err.message);
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => done(classify(err), err.message));
    sock.on('close', () => done('connection closed', 'the server closed the connection before a full answer'));
    const url = urls[gateway];
    sock.write(serializeRequest('GET', `/api/endpoints/${endpointId}/docker${o.path}`, [['Host', url.host], ...auth, ['Connection', 'close']]));
  })));
  return { path: o.path, timeoutMs: o.timeoutMs, firedAt, connectMs, calls, messages };
}
