import https from 'node:https';
import http from 'node:http';
import type { Logger } from 'pino';
import type { AgentConfig } from './config';

/** The poll reply (reference 1.8): lowercase keys, nested objects with Go field names. */
export interface PollResponse {
  status: 'IDLE' | 'REQUIRED' | string;
  port: number;
  schedules: unknown[];
  checkin: number;
  credentials: string;
  stacks: unknown[];
}

/** Why a poll failed, as the operator needs to read it. */
export class PollError extends Error {
  /** The request went out on a kept-alive connection the server had closed: worth one resend. */
  staleConnection = false;

  constructor(message: string, readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PollError';
  }
}

type Reply = { status: number; etag?: string; push?: string; body: Buffer };

const MAX_ETAGS = 8;

/**
 * The standard-mode check-in loop, as Portainer's agent makes it (reference 1.6, 1.9): one
 * keep-alive HTTPS connection, the last 8 replies cached by ETag and offered in If-None-Match,
 * the interval taken from each reply, and a random delay in [0, interval) after a failure so a
 * fleet coming back does not hit the server in step.
 */
export class Poller {
  private intervalS = 5;
  private readonly replies = new Map<string, PollResponse>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** The push channel is up: no ticks (a one-off `pollNow` still checks in). */
  private paused = false;
  private busy = false;
  private readonly agent: http.Agent;

  /**
   * `onPushOffer` hears, after each answered check-in, the push path the reply offered
   * (`X-Capstan-Push`), or undefined when it offered none.
   */
  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly onReply: (r: PollResponse) => Promise<void> | void,
    private readonly onPushOffer: (path: string | undefined) => void = () => undefined,
  ) {
    const url = new URL(config.key.apiUrl);
    this.agent = url.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: !config.insecurePoll })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    if (url.protocol !== 'https:') log.warn({ url: url.origin }, 'the Edge key points at a plain-HTTP API URL');
  }

  /** The interval the server asked for, in seconds. */
  get checkinSeconds(): number {
    return this.intervalS;
  }

  start(): void {
    this.running = true;
    void this.tick();
  }

  /** Checks in now instead of at the next tick (e.g. right after the tunnel dropped); once only while paused. */
  pollNow(): void {
    if (!this.running || this.busy) return;
    clearTimeout(this.timer);
    void this.tick();
  }

  /** Stops ticking (the push channel brings the replies). */
  pause(): void {
    this.paused = true;
    clearTimeout(this.timer);
  }

  /** Ticks again, starting with a check-in now. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.pollNow();
  }

  /**
   * A reply that came over the push channel: handled exactly like a polled one, and cached by its
   * ETag so a later check-in can be answered 304.
   */
  async acceptPushed(reply: PollResponse, etag: string): Promise<void> {
    if (etag) this.remember(etag, reply);
    this.adoptInterval(reply);
    await this.onReply(reply);
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.agent.destroy();
  }

  /** One check-in: the decoded reply, from the body or from the ETag cache on a 304. */
  async pollOnce(): Promise<PollResponse> {
    const { apiUrl, endpointId } = this.config.key;
    const url = new URL(`/api/endpoints/${endpointId}/edge/status`, apiUrl);
    const headers: Record<string, string> = {
      'X-PortainerAgent-EdgeID': this.config.edgeId,
      'Portainer-Agent': this.config.agentVersion,
      'Portainer-Agent-Platform': '1',
      'X-PortainerAgent-TimeZone': Intl.DateTimeFormat().resolvedOptions().timeZone || 'Local',
      'X-PortainerAgent-Update-ID': '0',
    };
    if (this.replies.size) headers['If-None-Match'] = [...this.replies.keys()].join(',');
    const { status, etag, body, push } = await this.get(url, headers);
    if (status === 304 && etag && this.replies.has(etag)) {
      const cached = this.replies.get(etag)!;
      this.remember(etag, cached);
      this.onPushOffer(push);
      return cached;
    }
    if (status !== 200) {
      let message = body.toString('utf8').slice(0, 500);
      try {
        message = JSON.parse(message).message ?? message;
      } catch { /* not JSON */ }
      throw new PollError(status === 403
        ? `the server refused this agent (HTTP 403: ${message}); if another agent was bound to this environment, an administrator must clear its association (DELETE /api/endpoints/${endpointId}/association)`
        : `check-in failed: HTTP ${status}: ${message}`, status);
    }
    const reply = JSON.parse(body.toString('utf8')) as PollResponse;
    if (etag) this.remember(etag, reply);
    this.onPushOffer(push);
    return reply;
  }

  /** Caches a reply by its ETag, most recently used last, at most MAX_ETAGS. */
  private remember(etag: string, reply: PollResponse): void {
    this.replies.delete(etag);
    this.replies.set(etag, reply);
    while (this.replies.size > MAX_ETAGS) this.replies.delete(this.replies.keys().next().value!);
  }

  private adoptInterval(reply: PollResponse): void {
    if (reply.checkin > 0 && reply.checkin !== this.intervalS) {
      this.log.info({ from: this.intervalS, to: reply.checkin }, 'check-in interval changed');
      this.intervalS = reply.checkin;
    }
  }

  /**
   * One GET, sent once more on a new connection when the kept-alive one it went out on was closed
   * by the server without an answer (its idle timeout ran out as the request left; Capstan's
   * check-in replies do not announce that timeout). Go's client, in Portainer's agent, does the same.
   */
  private async get(url: URL, headers: Record<string, string>): Promise<Reply> {
    try {
      return await this.request(url, headers);
    } catch (err) {
      if (!(err instanceof PollError && err.staleConnection)) throw err;
      this.log.debug({ err: err.message }, 'kept-alive connection closed by the server; checking in on a new one');
      return this.request(url, headers);
    }
  }

  private request(url: URL, headers: Record<string, string>): Promise<Reply> {
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', headers, agent: this.agent, timeout: Math.max(this.intervalS, 5) * 1000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const push = res.headers['x-capstan-push'];
        res.on('end', () => resolve({ status: res.statusCode ?? 0, etag: res.headers.etag, push: Array.isArray(push) ? push[0] : push, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('check-in timed out')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        const error = new PollError(`cannot reach ${url.origin}: ${err.message}`, undefined, { cause: err });
        error.staleConnection = req.reusedSocket && err.code === 'ECONNRESET';
        reject(error);
      });
      req.end();
    });
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    this.busy = true;
    let delayMs: number;
    try {
      const reply = await this.pollOnce();
      this.log.debug({ status: reply.status, checkin: reply.checkin }, 'checked in');
      this.adoptInterval(reply);
      await this.onReply(reply);
      delayMs = this.intervalS * 1000;
    } catch (err) {
      this.log.warn({ status: (err as PollError).status }, (err as Error).message);
      delayMs = Math.floor(Math.random() * this.intervalS * 1000);
    } finally {
      this.busy = false;
    }
    clearTimeout(this.timer);
    if (this.running && !this.paused) this.timer = setTimeout(() => void this.tick(), delayMs);
  }
}
