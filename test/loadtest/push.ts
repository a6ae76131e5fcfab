/**
 * The push channel of the simulated agents of one worker (`--mode push`), as agent/push.ts holds
 * it, on the same `ws` client with the same options: once a check-in reply offers it
 * (`X-Capstan-Push`), the agent opens the WebSocket to that path on the API URL (subprotocol
 * capstan-push.v1, the check-in headers, no extension, a full TLS handshake) and stops polling
 * while it is up; when it drops the agent polls at once and reconnects after an exponential
 * back-off with jitter (1 s doubling to 60 s, each delay in [1/2, 1] of that, reset once a
 * connection stayed up for 60 s); a reply without the header stops the reconnecting. Nothing heard
 * for 75 s (2.5 server pings) drops it.
 *
 * The poll connection is closed when the channel is being opened, so an agent holds one socket,
 * not two (the agent leaves its idle poll connection to the server's keep-alive timeout).
 *
 * Counted: handshakes and their failures by kind, drops by close code, messages by type, and the
 * times each agent's channel opened and each time its status turned REQUIRED (new credentials) or
 * back, by push message or by poll reply.
 */
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { PUSH_PING_MS, PUSH_SUBPROTOCOL } from '../../shared/contracts/push';
import { classify, type ReplyObserver } from './fleet';
import type { RawResponse } from './http1';
import { AGENT_VERSION } from './modes';
import { parsePushMessage, ReplyCache } from './replies';

/** Reconnect back-off, as agent/push.ts. */
export const BACKOFF = { minMs: 1000, maxMs: 60_000, stableMs: 60_000 };
/** The opening handshake (TCP, TLS, upgrade) must end within this (agent/push.ts: 10 s). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Nothing from the server for this long: the connection is dead. */
const DEAD_AFTER_MS = Math.round(2.5 * PUSH_PING_MS);
/**
 * Opening handshakes a worker runs at once; further agents wait for a slot (not counted in their
 * handshake time). Thousands of TLS handshakes started together keep a worker's event loop busy
 * for seconds: their timeouts would then measure the tester, not the server.
 */
export const MAX_OPENING = 200;

/**
 * The next reconnect delay after `attempt` failed attempts (0: the first retry), in [base/2, base]
 * for base = min(max, min * 2^attempt); `random` in [0, 1).
 */
export function backoffDelay(attempt: number, random: number, o: { minMs: number; maxMs: number } = BACKOFF): number {
  const base = Math.min(o.maxMs, o.minMs * 2 ** attempt);
  return Math.round(base / 2 + (random * base) / 2);
}

/** `queued`: waiting for an opening slot; `waiting`: for its reconnect back-off. */
type State = 'idle' | 'queued' | 'connecting' | 'open' | 'waiting';

interface PushAgent {
  index: number;
  endpointId: number;
  edgeId: string;
  port: number;
  /** The offered path, or undefined while the last reply offered none. */
  path?: string;
  state: State;
  ws?: WebSocket;
  /** The channel's TLS socket (made for ws by `createConnection`), for its errors once open. */
  sock?: tls.TLSSocket;
  /** The TLS handshake of the attempt under way completed. */
  established: boolean;
  connectStart: number;
  upSince: number;
  lastHeard: number;
  attempt: number;
  retry?: NodeJS.Timeout;
  /** The failure of the attempt under way was already counted. */
  failed?: boolean;
  /** Why the open channel ended, when the close code does not say: `silent`, `protocol`, a socket error's kind. */
  cause?: string;
  /** Last status seen (by push or poll): REQUIRED, and with which credentials. */
  required: boolean;
  credentials: string;
  replies: ReplyCache;
}

/** ws's close code when no close frame came: the connection just ended. */
const ABNORMAL_CLOSURE = 1006;

/** The failure kind of an opening handshake that ended in an error (`established`: its TLS handshake had completed). */
export function openingFailure(err: NodeJS.ErrnoException, established: boolean): string {
  // ws's handshakeTimeout (Node's idle timer on the socket once TCP connected).
  if (err.message === 'Opening handshake has timed out') return 'timeout';
  // Node's error (code ECONNRESET) for a connection the server ended before answering: not a reset.
  if (err.message === 'socket hang up') return 'connection closed';
  // ws's checks of the 101 (accept key, subprotocol, extensions, Upgrade header) carry no code.
  if (!err.code) return 'protocol';
  return classify(err, established);
}

/** What the push agents of a worker counted so far. */
export interface PushCounters {
  agents: number;
  /** Agents whose check-ins offered the channel. */
  offered: number;
  /** Waiting for one of the worker's MAX_OPENING slots. */
  queued: number;
  connecting: number;
  open: number;
  /** Channels opened in all (reconnections included). */
  opened: number;
  /** Open channels per gateway port. */
  openByPort: Record<string, number>;
  /** Opening handshakes that failed, by kind (`HTTP 503`, `timeout`, `connection reset`, ...). */
  failed: Record<string, number>;
  /** Open channels that ended, by cause (`close 4000`, `connection lost`, `silent`, `protocol`). */
  dropped: Record<string, number>;
  /** Messages received, by type (`status`, `commands`, `timers`, `unreadable`, ...), and status messages by status. */
  messages: Record<string, number>;
  statuses: Record<string, number>;
  /** Pings answered. */
  pings: number;
  /** First message seen per failure kind. */
  firstErrors: Record<string, string>;
}

/**
 * Events since the previous report, flat: `opens` [agent, connect start, open] per channel opened;
 * `status` [agent, t, 1 REQUIRED / 0 not, 1 by push / 0 by poll] per change (a REQUIRED with new
 * credentials is a change). Times in ms since the run start.
 */
export interface PushEvents {
  opens: number[];
  status: number[];
}

export const OPEN_EVENT_FIELDS = 3;
export const STATUS_EVENT_FIELDS = 4;

export class PushAgents implements ReplyObserver {
  readonly counters: PushCounters;
  private readonly agents = new Map<number, PushAgent>();
  private events: PushEvents = { opens: [], status: [] };
  /** One for every channel of the worker: Node would build a context (an OpenSSL SSL_CTX) per connection. */
  private readonly secureContext = tls.createSecureContext();
  private readonly sweeper: NodeJS.Timeout;
  private stopped = false;
  /** Agents waiting for an opening slot, from `queueHead` on. */
  private queue: PushAgent[] = [];
  private queueHead = 0;

  constructor(
    agents: ReadonlyArray<{ index: number; endpointId: number; edgeId: string; port: number }>,
    private readonly o: {
      host: string;
      insecure: boolean;
      /** ms since the run start. */
      now: () => number;
      /** The fleet's side: stop polling, poll again, close the idle poll connection, take a pushed reply. */
      suspend: (index: number) => void;
      resume: (index: number) => void;
      dropPoll: (index: number) => void;
      acceptPushed: (index: number, etag: string, checkin: number) => void;
    },
  ) {
    for (const a of agents) {
      this.agents.set(a.index, {
        ...a, state: 'idle', established: false, connectStart: 0, upSince: 0, lastHeard: 0, attempt: 0, required: false, credentials: '', replies: new ReplyCache(),
      });
    }
    this.counters = { agents: agents.length, offered: 0, queued: 0, connecting: 0, open: 0, opened: 0, openByPort: {}, failed: {}, dropped: {}, messages: {}, statuses: {}, pings: 0, firstErrors: {} };
    this.sweeper = setInterval(() => this.sweep(), 1000);
  }

  /** Events since the previous call. */
  takeEvents(): PushEvents {
    const e = this.events;
    this.events = { opens: [], status: [] };
    return e;
  }

  /** An answered check-in: its status, and whether it offers the channel. */
  onReply(index: number, res: RawResponse): void {
    const a = this.agents.get(index);
    if (!a || this.stopped) return;
    const fields = a.replies.read(res);
    if (fields) this.status(a, fields.status, fields.credentials, false);
    const path = res.push && res.push.startsWith('/api/') ? res.push : undefined;
    if (path && a.path === undefined) this.counters.offered++;
    else if (!path && a.path !== undefined) this.counters.offered--;
    a.path = path;
    if (!path) {
      // No offer any more: no reconnecting (a queued agent is skipped when its turn comes).
      if (a.state === 'waiting') {
        clearTimeout(a.retry);
        a.state = 'idle';
      }
      return;
    }
    if (a.state === 'idle') this.open(a);
  }

  /** Connects now if a slot is free, else queues the agent. */
  private open(a: PushAgent): void {
    if (this.counters.connecting < MAX_OPENING) return this.connect(a);
    a.state = 'queued';
    this.counters.queued++;
    this.queue.push(a);
  }

  /** A slot was freed: the next queued agent still offered the channel connects. */
  private next(): void {
    while (this.counters.connecting < MAX_OPENING && this.queueHead < this.queue.length && !this.stopped) {
      const a = this.queue[this.queueHead++];
      if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      this.counters.queued--;
      a.state = 'idle';
      if (a.path !== undefined) this.connect(a);
    }
  }

  /** Closes every channel and stops reconnecting. */
  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweeper);
    for (const a of this.agents.values()) {
      clearTimeout(a.retry);
      // Going away (1001), then the socket is closed without waiting for the server's answer.
      if (a.state === 'open') a.ws?.close(1001);
      a.ws?.terminate();
    }
  }

  private connect(a: PushAgent): void {
    this.o.dropPoll(a.index);
    const { host, insecure } = this.o;
    a.failed = false;
    a.established = false;
    a.cause = undefined;
    a.state = 'connecting';
    a.connectStart = this.o.now();
    this.counters.connecting++;
    // The options of agent/push.ts (its time zone header is the host's; Go agents without TZ send Local).
    const ws = new WebSocket(`wss://${net.isIPv6(host) ? `[${host}]` : host}:${a.port}${a.path}`, PUSH_SUBPROTOCOL, {
      headers: {
        'X-PortainerAgent-EdgeID': a.edgeId,
        'Portainer-Agent': AGENT_VERSION,
        'Portainer-Agent-Platform': '1',
        'X-PortainerAgent-TimeZone': 'Local',
        'X-PortainerAgent-Update-ID': '0',
      },
      rejectUnauthorized: !insecure,
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      maxPayload: 1024 * 1024,
      createConnection: ((opts: tls.ConnectionOptions) => this.tlsSocket(a, opts)) as typeof net.createConnection,
    });
    a.ws = ws;
    ws.on('open', () => this.opened(a));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      a.lastHeard = this.o.now();
      this.message(a, data, isBinary);
    });
    // ws answers it (autoPong).
    ws.on('ping', () => {
      a.lastHeard = this.o.now();
      this.counters.pings++;
    });
    ws.on('unexpected-response', (_req, res) => {
      // A refused opening (a 503 while polling is not ready, a 403): its status, and the start of its body.
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 300) body += d;
      });
      res.once('close', () => {
        this.fail(a, `HTTP ${res.statusCode}`, (body.trim() || `${res.statusCode} ${res.statusMessage}`).slice(0, 200));
        ws.terminate();
      });
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      if (a.ws !== ws || this.stopped) return;
      if (a.state === 'connecting') return this.fail(a, openingFailure(err, a.established), err.message.slice(0, 200));
      // Once open, ws reports the server breaking the framing rules (WS_ERR_*), or a failed write.
      if (err.code?.startsWith('WS_ERR_')) {
        a.cause = 'protocol';
        this.counters.firstErrors.protocol ??= err.message;
      } else a.cause ??= classify(err, true);
      ws.terminate();
    });
    ws.on('close', (code: number) => {
      if (a.ws === ws) this.closed(a, code);
    });
  }

  /** The channel's TLS socket, as ws's own `tlsConnect` makes it but on the worker's secure context. */
  private tlsSocket(a: PushAgent, opts: tls.ConnectionOptions): tls.TLSSocket {
    const { host } = this.o;
    // `path` is the request's, not an IPC socket path.
    const sock = tls.connect({ ...opts, path: undefined, servername: net.isIP(host) ? '' : host, secureContext: this.secureContext });
    a.sock = sock;
    sock.once('secureConnect', () => {
      if (a.sock === sock) a.established = true;
    });
    // ws ends the channel on a socket error without reporting it: its kind says why the channel dropped.
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (a.sock === sock && a.state === 'open') a.cause ??= classify(err, true);
    });
    return sock;
  }

  private opened(a: PushAgent): void {
    const now = this.o.now();
    this.counters.connecting--;
    this.next();
    this.counters.open++;
    this.counters.opened++;
    this.counters.openByPort[a.port] = (this.counters.openByPort[a.port] ?? 0) + 1;
    a.state = 'open';
    a.upSince = now;
    a.lastHeard = now;
    this.events.opens.push(a.index, Math.round(a.connectStart * 10) / 10, Math.round(now * 10) / 10);
    this.o.suspend(a.index);
  }

  private message(a: PushAgent, data: Buffer, isBinary: boolean): void {
    const count = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);
    if (isBinary) return void count(this.counters.messages, 'binary');
    const m = parsePushMessage(data.toString('utf8'));
    count(this.counters.messages, m.type);
    if (!m.status) return;
    count(this.counters.statuses, m.status.status || '(none)');
    a.replies.remember(m.status.etag, { status: m.status.status, port: 0, credentials: m.status.credentials });
    this.o.acceptPushed(a.index, m.status.etag, m.status.checkin);
    this.status(a, m.status.status, m.status.credentials, true);
  }

  /** The agent's status changed (or REQUIRED came with new credentials): an event. */
  private status(a: PushAgent, status: string, credentials: string, byPush: boolean): void {
    const required = status === 'REQUIRED';
    if (required === a.required && (!required || credentials === a.credentials)) return;
    a.required = required;
    a.credentials = credentials;
    this.events.status.push(a.index, Math.round(this.o.now() * 10) / 10, required ? 1 : 0, byPush ? 1 : 0);
  }

  private fail(a: PushAgent, kind: string, message: string): void {
    if (a.failed) return;
    a.failed = true;
    this.counters.failed[kind] = (this.counters.failed[kind] ?? 0) + 1;
    this.counters.firstErrors[kind] ??= message;
  }

  private closed(a: PushAgent, code: number): void {
    const was = a.state;
    a.state = 'idle';
    a.ws = undefined;
    a.sock = undefined;
    if (was === 'connecting') {
      this.counters.connecting--;
      this.next();
      this.fail(a, 'connection closed', 'the server closed the connection during the opening handshake');
    } else if (was === 'open') {
      this.counters.open--;
      this.counters.openByPort[a.port]--;
      // Closed by the tester at the end: not a drop.
      if (this.stopped) return;
      // The tester's own verdict first; else the server's close code; else what ended the connection.
      const cause = a.cause === 'silent' || a.cause === 'protocol' ? a.cause : code !== ABNORMAL_CLOSURE ? `close ${code}` : a.cause ?? 'connection lost';
      this.counters.dropped[cause] = (this.counters.dropped[cause] ?? 0) + 1;
      if (this.o.now() - a.upSince >= BACKOFF.stableMs) a.attempt = 0;
      // Poll again at once.
      this.o.resume(a.index);
    }
    // Try again later while the channel is offered.
    if (this.stopped || a.path === undefined) return;
    const delay = backoffDelay(a.attempt++, Math.random());
    a.state = 'waiting';
    a.retry = setTimeout(() => {
      a.retry = undefined;
      a.state = 'idle';
      if (!this.stopped && a.path !== undefined) this.open(a);
    }, delay);
  }

  /**
   * Handshakes over their time (from the start: ws's own timeout only runs once TCP connected),
   * channels silent for too long. One timer for all, not one per socket.
   */
  private sweep(): void {
    const now = this.o.now();
    for (const a of this.agents.values()) {
      if (a.state === 'connecting' && now - a.connectStart > HANDSHAKE_TIMEOUT_MS) {
        this.fail(a, 'timeout', `no opening handshake within ${HANDSHAKE_TIMEOUT_MS} ms`);
        a.ws?.terminate();
      } else if (a.state === 'open' && now - a.lastHeard > DEAD_AFTER_MS) {
        a.cause = 'silent';
        this.counters.firstErrors.silent ??= `nothing from the server for ${DEAD_AFTER_MS} ms`;
        a.ws?.terminate();
      }
    }
  }
}
