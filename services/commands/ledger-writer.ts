import type { Logger } from 'moleculer';
import { STATUS_RANK, type CommandUpdate, type CommandWatermark, type UpdateCommandsParams, type UpdateCommandsResult } from '../../shared/contracts';

type Final = UpdateCommandsResult['final'];

/** Options of {@link LedgerWriter}. */
export interface LedgerWriterOptions {
  /** One state call (`state.updateCommands`). */
  persist: (p: UpdateCommandsParams) => Promise<UpdateCommandsResult>;
  /** Runs after each successful flush with the commands now finished (removes their jobs). */
  onFinal: (final: Final) => Promise<void>;
  log: Pick<Logger, 'warn'>;
  /** Coalescing window: changes arriving within it share one state call. */
  windowMs?: number;
}

/** Most updates per state call, and about the most bytes (results ride along). */
const MAX_UPDATES = 1000;
const MAX_BYTES = 512 * 1024;
/** Changes still unwritten after a failure are retried; past this many, the oldest are dropped. */
const MAX_BUFFERED = 100_000;

interface Waiter { resolve: (r: UpdateCommandsResult) => void; reject: (err: unknown) => void }

/**
 * Coalesces status changes from every check-in into few `state.updateCommands` calls: one per
 * window (~50 ms) instead of one per poll. Per command only the furthest status is kept (the
 * ledger is monotonic, so merging never loses anything). Flushes run one at a time, in order.
 * A failed flush rejects its waiters and keeps its changes for the next one (they are idempotent).
 */
export class LedgerWriter {
  private updates = new Map<string, CommandUpdate>();
  private watermarks: CommandWatermark[] = [];
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failures = 0;
  private closed = false;
  private readonly windowMs: number;

  constructor(private readonly opts: LedgerWriterOptions) {
    this.windowMs = opts.windowMs ?? 50;
  }

  /** Queues changes; settles once they are persisted and finished commands left their queues. */
  submit(updates: CommandUpdate[], watermarks: CommandWatermark[] = []): Promise<UpdateCommandsResult> {
    this.merge(updates, watermarks);
    const done = new Promise<UpdateCommandsResult>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.schedule(this.windowMs);
    return done;
  }

  /** Writes whatever is buffered now and waits for it (used when stopping). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.updates.size && !this.watermarks.length && !this.waiters.length) return this.chain;
    const updates = [...this.updates.values()];
    const watermarks = this.watermarks;
    const waiters = this.waiters;
    this.updates = new Map();
    this.watermarks = [];
    this.waiters = [];
    this.chain = this.chain.then(() => this.write(updates, watermarks, waiters));
    return this.chain;
  }

  /** Writes what is buffered, then stops retrying. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    this.timer ??= setTimeout(() => void this.flush(), delayMs);
  }

  private merge(updates: CommandUpdate[], watermarks: CommandWatermark[]): void {
    for (const u of updates) {
      const key = `${u.id}:${u.seq}`;
      const cur = this.updates.get(key);
      if (!cur || STATUS_RANK[u.status] > STATUS_RANK[cur.status]) this.updates.set(key, u);
    }
    this.watermarks.push(...watermarks);
    for (const key of this.updates.keys()) {
      if (this.updates.size <= MAX_BUFFERED) break;
      this.updates.delete(key);
    }
    if (this.watermarks.length > 1000) this.watermarks.splice(0, this.watermarks.length - 1000);
  }

  private async write(updates: CommandUpdate[], watermarks: CommandWatermark[], waiters: Waiter[]): Promise<void> {
    const total: UpdateCommandsResult = { updated: 0, final: [] };
    try {
      // Watermarks ride with the last part: state applies a call's updates before its watermarks,
      // so a delivery and the watermark reaching it may share a flush.
      const parts = chunks(updates);
      if (!parts.length) parts.push([]);
      for (let i = 0; i < parts.length; i++) {
        const r = await this.opts.persist({ updates: parts[i], watermarks: i === parts.length - 1 ? watermarks.slice(0, 1000) : [] });
        total.updated += r.updated;
        total.final.push(...r.final);
      }
      for (let i = 1000; i < watermarks.length; i += 1000) {
        const r = await this.opts.persist({ updates: [], watermarks: watermarks.slice(i, i + 1000) });
        total.updated += r.updated;
        total.final.push(...r.final);
      }
      this.failures = 0;
    } catch (err) {
      this.failures++;
      this.opts.log.warn({ err: (err as Error).message, updates: updates.length, failures: this.failures }, 'commands: persisting status changes failed; retrying');
      if (!this.closed) {
        this.merge(updates, watermarks);
        this.schedule(Math.min(10_000, 250 * 2 ** Math.min(this.failures, 6)));
      }
      for (const w of waiters) w.reject(err);
      return;
    }
    try {
      await this.opts.onFinal(total.final);
    } catch (err) {
      // Persisted: a leftover job is cleaned when it is delivered again (state answers it is final).
      this.opts.log.warn({ err: (err as Error).message }, 'commands: removing finished jobs failed');
    }
    for (const w of waiters) w.resolve(total);
  }
}

/** Splits updates into parts of at most MAX_UPDATES and about MAX_BYTES. */
function chunks(updates: CommandUpdate[]): CommandUpdate[][] {
  const out: CommandUpdate[][] = [];
  let cur: CommandUpdate[] = [];
  let bytes = 0;
  for (const u of updates) {
    const b = 80 + (u.error?.length ?? 0) + (u.result === undefined ? 0 : Buffer.byteLength(JSON.stringify(u.result) ?? ''));
    if (cur.length && (cur.length >= MAX_UPDATES || bytes + b > MAX_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(u);
    bytes += b;
  }
  if (cur.length) out.push(cur);
  return out;
}
