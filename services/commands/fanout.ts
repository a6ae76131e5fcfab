import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'moleculer';
import { pool } from '../../shared/concurrency';
import { isFinal, type BatchCommandsResult, type CommandRecord } from '../../shared/contracts';
import { jobOf, type DeliveryQueues } from './queues';

/** The BullMQ queue of fan-out jobs: one job per batch, `{batchId}`. */
export const FANOUT_QUEUE = 'command-fanout';
/** Commands read from state per page, and environments enqueued at once. */
const PAGE = 1000;
const CONCURRENCY = 32;

export interface FanoutData { batchId: string; total: number }
type Progress = { done: number; total: number };

/** Options of {@link Fanout}. */
export interface FanoutOptions {
  prefix: string;
  /** The shared, fail-fast connection (adds and progress reads). */
  redis: Redis;
  /** A connection for the worker (BullMQ wants `maxRetriesPerRequest: null` there); it duplicates it for blocking reads. */
  workerRedis: Redis;
  queues: DeliveryQueues;
  /** `state.batchCommands`. */
  readBatch: (batchId: string, start: number, limit: number) => Promise<BatchCommandsResult>;
  log: Logger;
  /** Called when a fan-out failed for good: reconciliation then covers its commands. */
  onGaveUp: () => void;
  /** BullMQ lock of a running fan-out (30 s) and how often stalled ones are looked for (15 s); shorter in tests. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

/** Groups records by environment (records of one environment keep their order). */
export function byEnvironment(records: CommandRecord[]): [number, CommandRecord[]][] {
  const m = new Map<number, CommandRecord[]>();
  for (const r of records) {
    const list = m.get(r.EnvironmentId);
    if (list) list.push(r);
    else m.set(r.EnvironmentId, [r]);
  }
  return [...m];
}

/**
 * Fan-out of a batch to its environments' delivery queues, as a BullMQ job processed by a Worker
 * in every commands replica. The API call only persists (one state commit) and adds this job;
 * the worker pages through the batch and adds each environment's jobs (idempotent: jobId = seq),
 * recording progress as it goes. A worker that dies mid-way leaves a stalled job, which BullMQ
 * hands to another worker; it resumes from the recorded progress.
 */
export class Fanout {
  readonly queue: Queue<FanoutData>;
  private worker: Worker<FanoutData> | undefined;
  private stopping = false;

  constructor(private readonly opts: FanoutOptions) {
    this.queue = new Queue<FanoutData>(FANOUT_QUEUE, { connection: opts.redis, prefix: opts.prefix, skipVersionCheck: true, skipWaitingForReady: true });
    this.queue.on('error', () => undefined); // the shared connection's errors are logged where it is created
  }

  start(): void {
    this.worker = new Worker<FanoutData>(FANOUT_QUEUE, (job) => this.process(job), {
      connection: this.opts.workerRedis, prefix: this.opts.prefix, concurrency: 2,
      // A dead worker's job is taken over after the lock expires; allow several takeovers.
      lockDuration: this.opts.lockDurationMs ?? 30_000, stalledInterval: this.opts.stalledIntervalMs ?? 15_000, maxStalledCount: 10,
    });
    this.worker.on('error', () => undefined); // connection errors: logged by the connection's owner
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1);
      this.opts.log[final ? 'error' : 'warn']({ batchId: job.data.batchId, attempt: job.attemptsMade, err: err.message }, final ? 'commands: fan-out gave up' : 'commands: fan-out attempt failed; retrying');
      if (final) this.opts.onGaveUp();
    });
  }

  /** Adds the fan-out job of a batch (again: nothing happens while it exists). */
  async add(batchId: string, total: number): Promise<void> {
    await this.queue.add('fanout', { batchId, total }, {
      jobId: batchId, attempts: 20, backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 }, removeOnFail: { age: 7 * 24 * 3600 },
    });
    await this.opts.queues.setEnqueued(batchId, 0);
  }

  private async process(job: Job<FanoutData>): Promise<Progress> {
    const p = job.progress as Partial<Progress> | number;
    let done = typeof p === 'object' && p && Number.isInteger(p.done) ? p.done! : 0;
    let total = job.data.total;
    while (done < total) {
      if (this.stopping) throw new Error('commands service stopping; the fan-out resumes from its progress');
      const page = await this.opts.readBatch(job.data.batchId, done, PAGE);
      // Finished ones stay out: re-adding a removed job would deliver it again.
      const live = page.commands.filter((c) => !isFinal(c.Status));
      await pool(byEnvironment(live), CONCURRENCY, ([env, records]) => this.opts.queues.add(env, records.map(jobOf)));
      total = page.total;
      if (page.next <= done) throw new Error(`fan-out of ${job.data.batchId} made no progress at ${done}`);
      done = page.next;
      await job.updateProgress({ done, total });
      await this.opts.queues.setEnqueued(job.data.batchId, done);
    }
    return { done, total };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.worker?.close();
    await this.queue.close();
  }
}
