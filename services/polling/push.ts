import type { Logger } from 'moleculer';
import { PUSH_ALIVE_MS, type ReplyChange } from '../../shared/contracts';
import type { EdgeRegistry, Entry } from './registry';

/** A registration no gateway refreshed for this long is dropped (its gateway is gone). */
export const PUSH_TTL_MS = 6 * PUSH_ALIVE_MS;
/** Changes per `edgeReply.changed` event: about 200 bytes each, well under NATS's 1 MB. */
export const CHANGES_PER_EVENT = 1000;

/** What this replica knows of one pushed environment. */
interface Pushed {
  /** What the agent was last sent: the reply's ETag (standard) or its timers (async); '' = unknown. */
  sig: string;
  /** Last pushOpen or pushAlive, ms. */
  seenAt: number;
  /** Last heartbeat handed to the flusher, unix seconds. */
  markedAt: number;
  /** The agent is no longer admitted: pushAlive answers "unknown" until a new pushOpen. */
  revoked?: boolean;
}

/** What the tracker needs around it. */
export interface PushTrackerDeps {
  registry: EdgeRegistry;
  /** Broadcasts `edgeReply.changed` to the gateways. */
  emit(items: ReplyChange[]): Promise<unknown>;
  /** The heartbeat sink (the flusher), as a check-in feeds it. */
  heartbeat(id: number, at: number): void;
  /** Unix seconds. */
  now(): number;
  log: Pick<Logger, 'warn'>;
}

/**
 * Which environments have a push connection (as gateways report them) and what their agents were
 * last sent. Whenever the registry says an environment's reply may have changed, the tracker
 * compares the new one with what was sent and, when it differs, tells the gateways, batched per
 * event-loop turn: a check-in's work stays one map lookup, and environments without a push
 * connection cost nothing. Heartbeats of pushed agents come from the gateways' reports.
 */
export class PushTracker {
  private readonly pushed = new Map<number, Pushed>();
  private dirty = new Set<number>();
  private revoked: number[] = [];
  private scheduled = false;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly deps: PushTrackerDeps) {}

  get size(): number {
    return this.pushed.size;
  }

  start(): void {
    this.sweeper ??= setInterval(() => this.sweep(Date.now()), 2 * PUSH_ALIVE_MS);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** An admitted push connection: from now on changes of this environment's reply are pushed. */
  open(entry: Entry): void {
    this.pushed.set(entry.env.Id, { sig: this.signature(entry), seenAt: Date.now(), markedAt: this.deps.now() });
  }

  /**
   * A gateway's live connections: heartbeats (handed to the flusher at most once per check-in
   * interval, so a pushed agent costs the store what a polling one does). Returns the ids whose
   * agent is no longer admitted. An id this replica did not know (another replica tracked it
   * before) is taken over and sent its current reply once.
   */
  alive(ids: number[]): number[] {
    const unknown: number[] = [];
    const now = this.deps.now();
    const ms = Date.now();
    for (const id of ids) {
      const entry = this.deps.registry.get(id);
      let rec = this.pushed.get(id);
      if (!entry || !entry.env.EdgeID || rec?.revoked) {
        unknown.push(id);
        continue;
      }
      if (!rec) {
        rec = { sig: '', seenAt: ms, markedAt: 0 };
        this.pushed.set(id, rec);
        this.changed(id);
      }
      rec.seenAt = ms;
      entry.heartbeat = Math.max(entry.heartbeat, now);
      if (now - rec.markedAt >= this.deps.registry.interval(entry)) {
        rec.markedAt = now;
        this.deps.heartbeat(id, now);
      }
    }
    return unknown;
  }

  closed(ids: number[]): void {
    for (const id of ids) this.pushed.delete(id);
  }

  /** The environment's reply may have changed. */
  changed(id: number): void {
    if (!this.pushed.has(id)) return;
    this.dirty.add(id);
    this.schedule();
  }

  /** Every reply may have changed (new settings). */
  changedAll(): void {
    for (const id of this.pushed.keys()) this.dirty.add(id);
    this.schedule();
  }

  /** The environment's agent is gone (association cleared, another agent bound, environment deleted). */
  gone(id: number): void {
    const rec = this.pushed.get(id);
    if (!rec || rec.revoked) return;
    rec.revoked = true;
    this.revoked.push(id);
    this.schedule();
  }

  /** Drops registrations no gateway refreshed within PUSH_TTL_MS. */
  sweep(nowMs: number): void {
    for (const [id, rec] of this.pushed) if (nowMs - rec.seenAt > PUSH_TTL_MS) this.pushed.delete(id);
  }

  /** Builds the changes now (normally on the next turn of the event loop) and emits them. */
  flush(): void {
    this.scheduled = false;
    const items: ReplyChange[] = [];
    for (const id of this.revoked) {
      // Re-opened since (a new agent, admitted): nothing to revoke.
      if (this.pushed.get(id)?.revoked) items.push({ id, kind: 'revoked' });
    }
    this.revoked = [];
    const dirty = this.dirty;
    this.dirty = new Set();
    for (const id of dirty) {
      const rec = this.pushed.get(id);
      const entry = this.deps.registry.get(id);
      if (!rec || rec.revoked || !entry) continue;
      const sig = this.signature(entry);
      if (sig === rec.sig) continue;
      rec.sig = sig;
      if (entry.env.AsyncMode) items.push({ id, kind: 'timers' });
      else {
        const reply = this.deps.registry.reply(entry);
        items.push({ id, kind: 'status', etag: reply.etag, body: reply.json });
      }
    }
    for (let i = 0; i < items.length; i += CHANGES_PER_EVENT) {
      this.deps.emit(items.slice(i, i + CHANGES_PER_EVENT))
        .catch((err: Error) => this.deps.log.warn({ err: err.message }, 'polling: push changes not sent'));
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** What decides whether the agent must hear about a change: its reply's ETag, or its timers. */
  private signature(entry: Entry): string {
    if (!entry.env.AsyncMode) return this.deps.registry.reply(entry).etag;
    const t = this.deps.registry.asyncIntervals(entry);
    return `a${t.Ping}/${t.Snapshot}/${t.Command}`;
  }
}
