import type { Client } from 'ssh2';
import { PING_REQUEST, sendGlobalRequest } from '../../shared/tunnel';

/**
 * The WebSocket URL of a tunnel server address. As in chisel's client: a bare `host:port` (the
 * Edge key form) means plain `ws://`, `http(s)://` becomes `ws(s)://`, and a missing port is 80
 * or 443. SSH inside carries the confidentiality; the pinned fingerprint carries the identity.
 */
export function parseServerUrl(addr: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(addr) ? addr : `http://${addr}`;
  const url = new URL(withScheme);
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new Error(`unsupported tunnel server scheme "${url.protocol}"`);
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  url.protocol = secure ? 'wss:' : 'ws:';
  if (!url.port) url.port = secure ? '443' : '80';
  return url.toString();
}

/** Rejects with `message` when `p` has not settled within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * chisel's keepalive: an SSH `ping` request every `periodMs`, answered `pong` by the server. A ping
 * without an answer within one period (a dead TCP path sends no RST) calls `onDead`. Only one ping
 * is in flight at a time. Returns a stop function.
 */
export function keepalive(client: Client, periodMs: number, onDead: (err: Error) => void): () => void {
  if (!(periodMs > 0)) return () => undefined;
  let inFlight = false;
  let stopped = false;
  const timer = setInterval(() => {
    if (inFlight || stopped) return;
    inFlight = true;
    withTimeout(sendGlobalRequest(client, PING_REQUEST, Buffer.alloc(0)), periodMs, 'tunnel keepalive timeout')
      .then(() => { inFlight = false; }, (err: Error) => { if (!stopped) { stopped = true; onDead(err); } });
  }, periodMs);
  timer.unref();
  return () => { stopped = true; clearInterval(timer); };
}
