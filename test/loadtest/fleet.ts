/**
 * The simulated agents of one worker thread: each has its own keep-alive TLS connection (as a real
 * fleet has one per host), checks in on its own timer like Portainer's agent (a Go ticker at the
 * interval the server asks for; a random delay in [0, interval) after a failure), and every
 * check-in becomes one sample.
 */
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ProtocolError, ResponseParser, type RawResponse } from './http1';
import type { ModeAgent, ModeDriver } from './modes';
import { errorCode, FLAG_NEW_CONNECTION, FLAG_RETRIED, isAnswered, SampleBuilder, type ErrorKind } from './stats';

/**
 * What else an agent does with its answered check-ins: the storm's tunnels (tunnels.ts), the push
 * channel (push.ts). Closed when the fleet finishes.
 */
export interface ReplyObserver {
  onReply(index: number, res: RawResponse): void;
  close(): Promise<void>;
}

/** What a worker is given to run. */
export interface FleetOptions {
  /** Wall-clock epoch ms at which the run starts (shared by every thread). */
  runStartEpochMs: number;
  /** Check-ins are started during [0, durationMs) after the start (push mode: Infinity, until told to stop). */
  durationMs: number;
  intervalS: number;
  /** A check-in without a full response after this long fails as a timeout. */
  timeoutMs: number;
  /** Host and port of the API (from the Edge keys), and the TLS server name to verify. */
  host: string;
  port: number;
  insecure: boolean;
  /** `port`: where this agent checks in instead (the distributed shape's second gateway); `storm`: it opens tunnels in a storm. */
  agents: Array<{ index: number; endpointId: number; edgeId: string; firstAtMs: number; port?: number; storm?: boolean }>;
  /** Tunnel server address and key fingerprint from the Edge keys (for the storm's agents). */
  tunnel?: { addr: string; fingerprint: string };
}

interface InFlight {
  start: number;
  fresh: boolean;
  retried: boolean;
  httpOut: number;
  wireIn0: number;
  wireOut0: number;
}

interface SimAgent extends ModeAgent {
  index: number;
  port: number;
  intervalMs: number;
  /** The current tick of the agent's ticker, ms since the run start. */
  due: number;
  answered?: boolean;
  /** The push channel is up: no ticks. */
  paused?: boolean;
  raw?: net.Socket;
  sock?: tls.TLSSocket;
  parser?: ResponseParser;
  session?: Buffer;
  inflight?: InFlight;
  timer?: NodeJS.Timeout;
}

/** Counters a worker reports besides samples. */
export interface FleetCounters {
  /** Connections established (TLS handshake done) and open now. */
  open: number;
  inflight: number;
  handshakes: number;
  resumed: number;
  /** Connections lost between check-ins (closed by the server, or an error while idle). */
  idleCloses: number;
  /** Ticks that came while the previous check-in was still running (the agent fell behind). */
  lateTicks: number;
  /** Agents that have had a check-in answered. */
  answeredAgents: number;
  /** First message seen per failure kind, for the report. */
  messages: Record<string, string>;
}

export class Fleet {
  readonly samples = new SampleBuilder();
  readonly counters: FleetCounters = { open: 0, inflight: 0, handshakes: 0, resumed: 0, idleCloses: 0, lateTicks: 0, answeredAgents: 0, messages: {} };
  private readonly agents: SimAgent[];
  private readonly byIndex = new Map<number, SimAgent>();
  private readonly inflight = new Set<SimAgent>();
  private readonly secureContext = tls.createSecureContext();
  private readonly sweep: NodeJS.Timeout;
  private readonly originOffset: number;
  private endMs: number;

  constructor(private readonly opts: FleetOptions, private readonly driver: ModeDriver, private readonly observer?: ReplyObserver) {
    this.originOffset = performance.timeOrigin - opts.runStartEpochMs;
    this.endMs = opts.durationMs;
    const host = net.isIPv6(opts.host) ? `[${opts.host}]` : opts.host;
    this.agents = opts.agents.map((a) => {
      const port = a.port ?? opts.port;
      const agent: SimAgent = { index: a.index, port, endpointId: a.endpointId, edgeId: a.edgeId, host: `${host}:${port}`, state: undefined, intervalMs: opts.intervalS * 1000, due: a.firstAtMs };
      driver.init(agent);
      this.byIndex.set(a.index, agent);
      return agent;
    });
    // One timer for every request timeout: cheaper than a timer per check-in.
    this.sweep = setInterval(() => this.expire(), 100);
  }

  /** ms since the run start. */
  now(): number {
    return performance.now() + this.originOffset;
  }

  start(): void {
    for (const a of this.agents) this.fireAt(a, a.due);
  }

  /** Starts no more check-ins from now on (instead of at the planned end). */
  stopEarly(): void {
    this.endMs = Math.min(this.endMs, this.now());
    for (const a of this.agents) clearTimeout(a.timer);
  }

  /** Resolves once the run has ended and no check-in is in flight, with every connection closed. */
  async finish(): Promise<void> {
    while (this.now() < this.endMs || this.inflight.size) await new Promise((r) => setTimeout(r, 50));
    clearInterval(this.sweep);
    for (const a of this.agents) {
      clearTimeout(a.timer);
      this.drop(a);
    }
    await this.observer?.close();
  }

  /**
   * Checks in now rather than at the next tick (the agent does when its tunnel could not be opened
   * or dropped while still required); nothing if a check-in is under way.
   */
  pollSoon(index: number): void {
    const a = this.byIndex.get(index);
    const now = this.now();
    if (!a || a.inflight || now >= this.endMs) return;
    clearTimeout(a.timer);
    a.timer = undefined;
    // The ticker restarts from now.
    a.due = now;
    this.send(a);
  }

  /**
   * The agent's push channel is up: it stops ticking (a check-in under way ends normally) and its
   * idle poll connection is closed.
   */
  suspend(index: number): void {
    const a = this.byIndex.get(index);
    if (!a) return;
    a.paused = true;
    clearTimeout(a.timer);
    a.timer = undefined;
    if (!a.inflight) this.drop(a);
  }

  /** The push channel went down: check in now, and tick again. */
  resume(index: number): void {
    const a = this.byIndex.get(index);
    if (!a?.paused) return;
    a.paused = false;
    this.pollSoon(index);
  }

  /** Closes the agent's poll connection if no check-in is under way on it (it opens another when it needs one). */
  dropIdle(index: number): void {
    const a = this.byIndex.get(index);
    if (a && !a.inflight) this.drop(a);
  }

  /** A reply pushed to the agent: cached by its ETag, and its interval taken for later polling. */
  acceptPushed(index: number, etag: string, checkin: number): void {
    const a = this.byIndex.get(index);
    if (!a) return;
    this.driver.remember?.(a, etag, checkin);
    if (checkin > 0) a.intervalMs = checkin * 1000;
  }

  private fireAt(a: SimAgent, at: number): void {
    a.timer = undefined;
    if (at >= this.endMs || a.paused) return;
    a.timer = setTimeout(() => {
      a.timer = undefined;
      if (this.now() < this.endMs) this.send(a);
    }, Math.max(0, at - this.now()));
  }

  private send(a: SimAgent, retryOf?: InFlight): void {
    const fresh = !a.sock;
    if (fresh) this.connect(a);
    const request = this.driver.request(a);
    a.inflight = {
      start: retryOf?.start ?? this.now(),
      fresh: fresh || !!retryOf?.fresh,
      retried: !!retryOf,
      httpOut: Buffer.byteLength(request),
      wireIn0: fresh ? 0 : a.raw!.bytesRead,
      wireOut0: fresh ? 0 : a.raw!.bytesWritten,
    };
    this.inflight.add(a);
    this.counters.inflight = this.inflight.size;
    // Before the handshake ends, TLSSocket queues the write.
    a.sock!.write(request);
  }

  private connect(a: SimAgent): void {
    const { host, insecure } = this.opts;
    const raw = net.connect({ host, port: a.port, noDelay: true });
    const sock = tls.connect({
      socket: raw, host, servername: net.isIP(host) ? undefined : host, secureContext: this.secureContext,
      rejectUnauthorized: !insecure, session: a.session,
    });
    a.raw = raw;
    a.sock = sock;
    a.parser = new ResponseParser();
    let established = false;
    sock.once('secureConnect', () => {
      established = true;
      this.counters.open++;
      this.counters.handshakes++;
      if (sock.isSessionReused()) this.counters.resumed++;
    });
    sock.on('session', (s: Buffer) => {
      a.session = s;
    });
    sock.on('data', (chunk: Buffer) => {
      if (a.sock === sock) this.onData(a, chunk);
    });
    const onError = (err: NodeJS.ErrnoException) => {
      if (a.sock === sock) this.fail(a, classify(err, established), err.message);
    };
    raw.on('error', onError);
    sock.on('error', onError);
    sock.on('close', () => {
      if (established) this.counters.open--;
      if (a.sock !== sock) return;
      const last = a.parser?.finish();
      if (last && a.inflight) this.complete(a, last);
      else if (a.inflight) this.fail(a, 'connection closed', 'the server closed the connection before a full response');
      else {
        this.counters.idleCloses++;
        this.drop(a);
      }
    });
  }

  private onData(a: SimAgent, chunk: Buffer): void {
    if (!a.inflight) {
      this.counters.messages.protocol ??= 'bytes received while no request was in flight';
      this.drop(a);
      return;
    }
    let responses: RawResponse[];
    try {
      responses = a.parser!.push(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(a, 'protocol', err.message);
      return;
    }
    for (const res of responses) {
      if (a.inflight) this.complete(a, res);
    }
  }

  private complete(a: SimAgent, res: RawResponse): void {
    const inf = a.inflight!;
    const now = this.now();
    this.record(a, inf, now, res.status, res.bytes, this.wire(a, inf));
    if (res.close) this.drop(a);
    if (!isAnswered(res.status)) {
      this.driver.onFailure(a);
      this.jitter(a, now);
      return;
    }
    if (!a.answered) {
      a.answered = true;
      this.counters.answeredAgents++;
    }
    const asked = this.driver.onReply(a, res);
    this.observer?.onReply(a.index, res);
    // Pushed meanwhile: the connection is not needed any more.
    if (a.paused) this.drop(a);
    if (asked !== undefined && asked > 0 && asked * 1000 !== a.intervalMs) {
      // Like the agent: a new interval resets the ticker.
      a.intervalMs = asked * 1000;
      a.due = now;
    }
    this.nextTick(a, now);
  }

  private fail(a: SimAgent, kind: ErrorKind, message: string): void {
    const inf = a.inflight;
    const pending = a.parser?.pendingBytes ?? 0;
    const wire = inf && this.wire(a, inf);
    this.drop(a);
    if (!inf) {
      this.counters.idleCloses++;
      return;
    }
    // Go's transport sends an idempotent request again when a reused connection turns out to be
    // closed before any byte of the answer came back; so does this agent, once.
    if (!inf.fresh && !inf.retried && pending === 0 && (kind === 'connection reset' || kind === 'connection closed')) {
      this.send(a, inf);
      return;
    }
    this.counters.messages[kind] ??= message;
    const now = this.now();
    this.record(a, inf, now, errorCode(kind), pending, wire!);
    this.driver.onFailure(a);
    this.jitter(a, now);
  }

  /** TCP payload bytes of the check-in so far, each way. */
  private wire(a: SimAgent, inf: InFlight): { out: number; in: number } {
    return a.raw ? { out: a.raw.bytesWritten - inf.wireOut0, in: a.raw.bytesRead - inf.wireIn0 } : { out: 0, in: 0 };
  }

  private record(a: SimAgent, inf: InFlight, now: number, code: number, httpIn: number, wire: { out: number; in: number }): void {
    a.inflight = undefined;
    this.inflight.delete(a);
    this.counters.inflight = this.inflight.size;
    this.samples.add({
      t: inf.start,
      latency: now - inf.start,
      code,
      flags: (inf.fresh ? FLAG_NEW_CONNECTION : 0) | (inf.retried ? FLAG_RETRIED : 0),
      agent: a.index,
      httpOut: inf.httpOut,
      httpIn,
      wireOut: wire.out,
      wireIn: wire.in,
    });
  }

  /** The next tick of a Go ticker: its channel holds one missed tick, later ones are dropped. */
  private nextTick(a: SimAgent, now: number): void {
    let due = a.due + a.intervalMs;
    if (due <= now) {
      this.counters.lateTicks++;
      due += Math.floor((now - due) / a.intervalMs) * a.intervalMs;
      a.due = due;
      this.fireAt(a, now);
      return;
    }
    a.due = due;
    this.fireAt(a, due);
  }

  /** After a failure: a random delay in [0, interval), then the ticker restarts from there. */
  private jitter(a: SimAgent, now: number): void {
    a.due = now + Math.random() * a.intervalMs;
    this.fireAt(a, a.due);
  }

  private expire(): void {
    const now = this.now();
    for (const a of this.inflight) {
      if (now - a.inflight!.start > this.opts.timeoutMs) this.fail(a, 'timeout', `no full response within ${this.opts.timeoutMs} ms`);
    }
  }

  /** Forgets the agent's connection (it opens a new one on its next check-in). */
  private drop(a: SimAgent): void {
    const sock = a.sock;
    a.sock = undefined;
    a.raw = undefined;
    a.parser = undefined;
    sock?.destroy();
  }
}

/** The failure kind of a socket error (`established`: the TLS handshake had completed). */
export function classify(err: NodeJS.ErrnoException, established: boolean): ErrorKind {
  const code = err.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection reset';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'EMFILE' || code === 'ENFILE') return 'fd limit';
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME/.test(code)) return 'tls';
  if (!established && /ssl|tls|certificate/i.test(err.message)) return 'tls';
  return 'other';
}
