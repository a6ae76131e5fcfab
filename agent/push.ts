import type { Logger } from 'pino';
import WebSocket from 'ws';
import { PUSH_PING_MS, PUSH_SUBPROTOCOL } from '../shared/contracts/push';

/** What the agent does with the channel: a status is handled like a poll reply; nudges trigger an exchange. */
export interface PushHandlers {
  /** A `status` message: the poll reply body and its ETag. */
  onStatus(body: unknown, etag: string): Promise<void> | void;
  /** `commands` or `timers` (async agents). */
  onNudge(kind: 'commands' | 'timers'): void;
  /** The channel is open: stop polling. */
  onUp(): void;
  /** The channel closed: poll again at once (it reconnects by itself). */
  onDown(): void;
}

/** Who the agent is (the poll's headers) and how to reach the server. */
export interface PushChannelOptions extends PushHandlers {
  apiUrl: string;
  edgeId: string;
  agentVersion: string;
  /** EDGE_INSECURE_POLL: accept any server certificate, as polling does. */
  insecure: boolean;
  log: Logger;
  /** First reconnect delay (default 1 s); it doubles up to `maxBackoffMs` (60 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A connection that stayed up this long resets the back-off (default 60 s). */
  stableMs?: number;
  /** Nothing from the server (ping or message) for this long: the connection is dead (default 2.5 server pings). */
  deadAfterMs?: number;
  /** Budget for the TLS and WebSocket handshake (default 10 s). */
  handshakeTimeoutMs?: number;
}

/**
 * The agent's end of the push channel (README "Push channel"). It is only tried once a reply
 * carried `X-Capstan-Push` (so a Portainer server is never bothered), to that path on the Edge
 * key's API URL, with the check-in's headers and TLS options. While it is up the agent does not
 * poll; when it drops the agent polls again at once, and reconnects after an exponential back-off
 * with jitter (1 s doubling to 60 s; reset once a connection stayed up for 60 s). A reply without
 * the header stops the reconnecting.
 */
export class PushChannel {
  private url: string | undefined;
  private ws: WebSocket | undefined;
  private up = false;
  private upSince = 0;
  private attempt = 0;
  private retry: NodeJS.Timeout | undefined;
  private dead: NodeJS.Timeout | undefined;
  private stopped = false;
  private chain: Promise<void> = Promise.resolve();
  private warnedPath = '';

  constructor(private readonly opts: PushChannelOptions) {}

  get connected(): boolean {
    return this.up;
  }

  /** What the server's last reply said: the push path it offers, or undefined (none). */
  offer(path: string | undefined): void {
    if (this.stopped) return;
    this.url = path ? this.resolve(path) : undefined;
    if (!this.url) {
      clearTimeout(this.retry);
      this.retry = undefined;
      return;
    }
    if (this.ws || this.retry) return; // connected, connecting, or waiting to retry
    this.connect(this.url);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    clearTimeout(this.dead);
    this.ws?.terminate();
  }

  /** The path on the API URL's origin, as a ws(s) URL; anything pointing elsewhere is refused. */
  private resolve(path: string): string | undefined {
    try {
      const base = new URL(this.opts.apiUrl);
      const u = new URL(path, base);
      if (u.origin !== base.origin || !u.pathname.startsWith('/api/')) throw new Error('not on the API URL');
      u.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
      return u.href;
    } catch (err) {
      if (this.warnedPath !== path) this.opts.log.warn({ path, err: (err as Error).message }, 'ignoring an unusable push channel offer');
      this.warnedPath = path;
      return undefined;
    }
  }

  private connect(url: string): void {
    const { opts } = this;
    const ws = new WebSocket(url, PUSH_SUBPROTOCOL, {
      headers: {
        'X-PortainerAgent-EdgeID': opts.edgeId,
        'Portainer-Agent': opts.agentVersion,
        'Portainer-Agent-Platform': '1',
        'X-PortainerAgent-TimeZone': Intl.DateTimeFormat().resolvedOptions().timeZone || 'Local',
        'X-PortainerAgent-Update-ID': '0',
      },
      rejectUnauthorized: !opts.insecure,
      perMessageDeflate: false,
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      maxPayload: 1024 * 1024,
    });
    this.ws = ws;
    ws.on('open', () => {
      this.up = true;
      this.upSince = Date.now();
      this.heard();
      opts.log.info({ url }, 'push channel up: not polling while it lasts');
      opts.onUp();
    });
    ws.on('ping', () => this.heard());
    ws.on('message', (data, isBinary) => {
      this.heard();
      if (!isBinary) this.handle(data.toString());
    });
    ws.on('error', (err) => opts.log.debug({ err: err.message }, 'push channel error'));
    ws.on('close', (code, reason) => this.closed(ws, code, reason.toString()));
  }

  private handle(text: string): void {
    let msg: { type?: unknown; etag?: unknown; body?: unknown };
    try {
      msg = JSON.parse(text);
    } catch {
      this.opts.log.debug('push channel: unreadable message ignored');
      return;
    }
    if (msg?.type === 'status' && msg.body && typeof msg.body === 'object') {
      const { body } = msg;
      const etag = typeof msg.etag === 'string' ? msg.etag : '';
      // One at a time and in order, like poll replies (opening a tunnel may take a while).
      this.chain = this.chain.then(() => this.opts.onStatus(body, etag))
        .catch((err: Error) => this.opts.log.warn({ err: err.message }, 'push channel: status not applied'));
    } else if (msg?.type === 'commands' || msg?.type === 'timers') this.opts.onNudge(msg.type);
  }

  /** Anything from the server proves the connection alive. */
  private heard(): void {
    clearTimeout(this.dead);
    const ws = this.ws;
    this.dead = setTimeout(() => {
      this.opts.log.warn('push channel silent for too long; dropping it');
      ws?.terminate();
    }, this.opts.deadAfterMs ?? Math.round(2.5 * PUSH_PING_MS));
  }

  private closed(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    clearTimeout(this.dead);
    if (this.up) {
      this.up = false;
      if (Date.now() - this.upSince >= (this.opts.stableMs ?? 60_000)) this.attempt = 0;
      this.opts.log.warn({ code, reason }, 'push channel down: polling again');
      this.opts.onDown();
    }
    if (this.stopped) return;
    const min = this.opts.minBackoffMs ?? 1000;
    const base = Math.min(this.opts.maxBackoffMs ?? 60_000, min * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.opts.log.debug({ delayMs: delay, attempt: this.attempt }, 'push channel: reconnecting later');
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (!this.stopped && this.url) this.connect(this.url);
    }, delay);
  }
}
