import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CommandRecord, CommandType } from '../../shared/contracts';

/** A command as a job of its environment's delivery queue (jobId `s<seq>`). */
export interface CommandJob {
  seq: number;
  type: CommandType;
  value: unknown;
  stopOnFailure: boolean;
  /** RFC 3339 of the ledger's Timestamp. */
  timestamp: string;
}

/** BullMQ refuses integer custom ids (they would collide with its own): `s<seq>`. */
export const jobIdOf = (seq: number): string => `s${seq}`;
const seqOfJobId = (id: string): number => (/^s[0-9]+$/.test(id) ? Number(id.slice(1)) : NaN);

export const jobOf = (r: CommandRecord): CommandJob => ({ seq: r.Seq, type: r.Type, value: r.Value, stopOnFailure: r.StopOnFailure, timestamp: r.Timestamp });

/** Options of {@link DeliveryQueues}. */
export interface DeliveryQueuesOptions {
  /** BullMQ key prefix, e.g. `capstan:commands`. */
  prefix: string;
  /** Queue objects kept open at most (least recently used ones are closed). */
  maxOpen?: number;
  /** Called with errors a queue object emits (they are connection errors of the shared client). */
  onError?: (err: Error) => void;
}

interface Entry { queue: Queue<CommandJob>; busy: number }

/** Batches' "enqueued" counters live this long in Redis. */
const BATCH_TTL_S = 7 * 24 * 3600;

/**
 * One BullMQ queue per environment (`cmd-<id>`), all on one shared ioredis connection, created
 * lazily and kept in a bounded LRU. Nothing consumes these queues with a Worker: the agent pulls
 * through `pending`, and an acknowledged command is removed. A job's id is the command's seq
 * (`s<seq>`), so
 * adding a command again while its job exists does nothing, which makes every re-queue idempotent.
 */
export class DeliveryQueues {
  private readonly open = new Map<number, Entry>();
  private readonly maxOpen: number;

  constructor(private readonly redis: Redis, private readonly opts: DeliveryQueuesOptions) {
    this.maxOpen = opts.maxOpen ?? 1000;
  }

  /** Adds commands (one environment's, any order); existing jobs are left as they are. */
  async add(envId: number, jobs: CommandJob[]): Promise<void> {
    if (!jobs.length) return;
    await this.use(envId, (q) => q.addBulk(jobs.map((data) => ({ name: data.type, data, opts: { jobId: jobIdOf(data.seq) } }))));
  }

  /**
   * The environment's commands with seq > afterSeq, in seq order: at most `limit`, and past
   * `maxBytes` of values no more (at least one). `more` says whether others remain.
   */
  async pending(envId: number, afterSeq: number, limit: number, maxBytes: number): Promise<{ jobs: CommandJob[]; more: boolean }> {
    return this.use(envId, async (q) => {
      const seqs = (await q.getRanges(['wait'], 0, -1, true)).map(seqOfJobId).filter((s) => Number.isInteger(s) && s > afterSeq).sort((a, b) => a - b);
      const chosen = seqs.slice(0, limit);
      const found = await Promise.all(chosen.map((s) => q.getJob(jobIdOf(s))));
      const jobs: CommandJob[] = [];
      let bytes = 0;
      let taken = 0;
      for (const job of found) {
        if (jobs.length && bytes >= maxBytes) break;
        taken++;
        // Removed since the listing (acknowledged meanwhile): finished, skip it.
        if (!job?.data) continue;
        jobs.push(job.data);
        bytes += Buffer.byteLength(JSON.stringify(job.data.value) ?? '');
      }
      return { jobs, more: seqs.length > taken };
    });
  }

  /** The environment's command with the lowest seq, or null when its queue is empty. */
  async lowest(envId: number): Promise<CommandJob | null> {
    return this.use(envId, async (q) => {
      const seqs = (await q.getRanges(['wait'], 0, -1, true)).map(seqOfJobId).filter(Number.isInteger);
      if (!seqs.length) return null;
      const job = await q.getJob(jobIdOf(Math.min(...seqs)));
      return job?.data ?? null;
    });
  }

  /** Removes finished commands from the environment's queue. */
  async remove(envId: number, seqs: number[]): Promise<void> {
    if (!seqs.length) return;
    await this.use(envId, (q) => Promise.all(seqs.map((s) => q.remove(jobIdOf(s)))));
  }

  /** Records how many of a batch's commands reached the queues (absolute, so retries never over-count). */
  async setEnqueued(batchId: string, n: number): Promise<void> {
    const key = `${this.opts.prefix}:batch:${batchId}`;
    await this.redis.multi().hset(key, 'enqueued', n).expire(key, BATCH_TTL_S).exec();
  }

  async getEnqueued(batchId: string): Promise<number | null> {
    const v = await this.redis.hget(`${this.opts.prefix}:batch:${batchId}`, 'enqueued');
    return v === null ? null : Number(v);
  }

  /** Runs `fn` on the environment's queue; a queue in use is never closed under it. */
  private async use<T>(envId: number, fn: (q: Queue<CommandJob>) => Promise<T>): Promise<T> {
    let entry = this.open.get(envId);
    if (entry) this.open.delete(envId);
    else entry = { queue: this.create(envId), busy: 0 };
    this.open.set(envId, entry);
    entry.busy++;
    try {
      return await fn(entry.queue);
    } finally {
      entry.busy--;
      this.evict();
    }
  }

  private create(envId: number): Queue<CommandJob> {
    const queue = new Queue<CommandJob>(`cmd-${envId}`, {
      connection: this.redis, prefix: this.opts.prefix,
      // One INFO per connection is enough; a not-ready connection must fail fast, not wait.
      skipVersionCheck: true, skipWaitingForReady: true,
      // Nobody reads the events stream of a delivery queue: keep it short.
      streams: { events: { maxLen: 20 } },
    });
    queue.on('error', (err) => this.opts.onError?.(err));
    return queue;
  }

  private evict(): void {
    for (const [id, entry] of this.open) {
      if (this.open.size <= this.maxOpen) return;
      if (entry.busy > 0) continue;
      this.open.delete(id);
      void entry.queue.close().catch(() => undefined);
    }
  }

  /** Queue objects currently open (for tests). */
  get size(): number {
    return this.open.size;
  }

  async close(): Promise<void> {
    const entries = [...this.open.values()];
    this.open.clear();
    await Promise.all(entries.map((e) => e.queue.close().catch(() => undefined)));
  }
}
