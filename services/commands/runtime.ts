import { Redis } from 'ioredis';
import type { Logger, ServiceBroker } from 'moleculer';
import type { Config } from '../../shared/config';
import {
  call, commandView, PUSH_IDS_PER_CALL, PushEvents, specProblem, toCommandInput,
  type AckParams, type AckResult, type AckUntilTimestampParams, type CommandBatch, type CommandUpdate, type CommandsQueueParams, type CommandsQueueResult,
  type DeliveredParams, type PendingParams, type PendingResult, type UpdateCommandsResult,
} from '../../shared/contracts';
import { AppError, BadRequestError } from '../../shared/errors';
import { pool } from '../../shared/concurrency';
import { Fanout } from './fanout';
import { LedgerWriter } from './ledger-writer';
import { DeliveryQueues, jobOf, type CommandJob, type DeliveryQueuesOptions } from './queues';
import { Reconciler } from './reconciler';

/** Answered by `pending` while Redis is unreachable: a check-in should go on without commands. */
export class CommandsUnavailableError extends AppError {
  constructor(cause: unknown) {
    super('Command delivery is unavailable (Redis unreachable); retry shortly', 503, 'COMMANDS_UNAVAILABLE', undefined, { cause, retryable: true });
  }
}

/** About the most bytes of command values one `pending` answer carries. */
const PENDING_BYTES = 512 * 1024;
/** Largest result kept per command; larger ones are replaced by their size. */
const MAX_RESULT_BYTES = 16 * 1024;
const MAX_ERROR_CHARS = 4096;
/** A finish time further ahead than this is a clock problem: the server's time is used instead. */
const MAX_SKEW_S = 300;
/** During one Redis outage, a warning at its start and then at most this often. */
const WARN_EVERY_MS = 10 * 60_000;

const unixNow = () => Math.floor(Date.now() / 1000);

function boundedResult(result: unknown): unknown {
  if (result === undefined) return undefined;
  const bytes = Buffer.byteLength(JSON.stringify(result) ?? '');
  return bytes > MAX_RESULT_BYTES ? { truncated: true, bytes } : result;
}

/** How long environments whose queues got commands are collected before one `commands.queued` event. */
const QUEUED_EVENT_DELAY_MS = 20;

/** Delivery queues that report every environment that got commands. */
class NotifyingQueues extends DeliveryQueues {
  constructor(redis: Redis, opts: DeliveryQueuesOptions, private readonly onAdded: (envId: number) => void) {
    super(redis, opts);
  }

  override async add(envId: number, jobs: CommandJob[]): Promise<void> {
    await super.add(envId, jobs);
    if (jobs.length) this.onAdded(envId);
  }
}

/**
 * Tells the gateways which environments just got commands (`commands.queued`, at most
 * PUSH_IDS_PER_CALL ids per event), so agents on the push channel fetch them at once. A fan-out
 * to 15,000 environments is a handful of events, not 15,000.
 */
class QueuedNotifier {
  private ids = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly broker: ServiceBroker, private readonly log: Logger) {}

  add(envId: number): void {
    this.ids.add(envId);
    this.timer ??= setTimeout(() => this.flush(), QUEUED_EVENT_DELAY_MS);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ids = [...this.ids];
    this.ids = new Set();
    for (let i = 0; i < ids.length; i += PUSH_IDS_PER_CALL) {
      this.broker.broadcast(PushEvents.commandsQueued, { ids: ids.slice(i, i + PUSH_IDS_PER_CALL) }, { groups: ['gateway'] })
        .catch((err: Error) => this.log.debug({ err: err.message }, 'commands: queued event not sent (agents still get them on their timers)'));
    }
  }
}

/**
 * One commands replica: the shared Redis connection and the per-environment delivery queues on
 * it, the fan-out worker, the ledger writer that batches status changes into state, and
 * reconciliation of the queues with the ledger.
 */
export class CommandsRuntime {
  readonly prefix: string;
  private redis!: Redis;
  private workerRedis!: Redis;
  queues!: DeliveryQueues;
  private fanout!: Fanout;
  private writer!: LedgerWriter;
  reconciler!: Reconciler;
  /** Redis (re)connections so far: a reconciliation pass counts only if none happened during it. */
  private epoch = 0;
  /** Set in Redis after a complete reconciliation pass; a Redis that came back empty lacks it. */
  private get reconciledKey(): string {
    return `${this.prefix}:reconciled`;
  }
  private lastWarn = 0;
  private redisDown = false;
  private readonly notifier: QueuedNotifier;

  constructor(private readonly broker: ServiceBroker, private readonly log: Logger, private readonly config: Config) {
    this.prefix = `${config.namespace}:commands`;
    this.notifier = new QueuedNotifier(broker, log);
  }

  async start(): Promise<void> {
    const name = `capstan-commands:${this.config.nodeID}`;
    // Fail fast: an API call must answer (the ledger has the commands) rather than wait for Redis.
    this.redis = new Redis(this.config.redisUrl, {
      connectionName: name, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000, commandTimeout: 5000,
      retryStrategy: (n) => Math.min(2000, 100 * n),
    });
    this.workerRedis = new Redis(this.config.redisUrl, { connectionName: `${name}:worker`, maxRetriesPerRequest: null, connectTimeout: 2000, retryStrategy: (n) => Math.min(2000, 100 * n) });
    for (const r of [this.redis, this.workerRedis]) r.on('error', (err: Error) => this.warnRedis(err));
    this.queues = new NotifyingQueues(this.redis, { prefix: this.prefix, onError: (err) => this.warnRedis(err) }, (id) => this.notifier.add(id));
    this.writer = new LedgerWriter({
      persist: (p) => call(this.broker, 'state.updateCommands', p),
      onFinal: (final) => this.removeFinished(final),
      log: this.log,
    });
    // Reconciliation needs state; in the distributed shape it may start later than this service.
    const stateKnown = this.broker.waitForServices(['state']).catch(() => undefined);
    this.reconciler = new Reconciler({
      queues: this.queues,
      readPending: async (afterKey, limit) => {
        await stateKnown;
        return call(this.broker, 'state.pendingCommands', afterKey ? { afterKey, limit } : { limit });
      },
      log: this.log,
      beforePass: () => this.epoch,
      // Only if Redis did not reconnect (maybe empty) during the pass; the reconnect asks for another.
      afterPass: async (epoch) => {
        if (epoch === this.epoch) await this.redis.set(this.reconciledKey, String(Date.now()));
      },
    });
    this.fanout = new Fanout({
      prefix: this.prefix, redis: this.redis, workerRedis: this.workerRedis, queues: this.queues, log: this.log,
      readBatch: (batchId, start, limit) => call(this.broker, 'state.batchCommands', { batchId, start, limit }),
      onGaveUp: () => void this.reconciler.request(),
    });
    this.fanout.start();
    // Every (re)connection: Redis may have come back empty.
    this.redis.on('ready', () => {
      this.epoch++;
      if (this.redisDown) this.log.info('commands: Redis reachable again; reconciling the delivery queues');
      this.redisDown = false;
      this.lastWarn = 0;
      void this.reconciler.request();
    });
  }

  async stop(): Promise<void> {
    this.reconciler.stop();
    const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 3000).unref())]);
    await bounded(this.writer.close());
    await bounded(this.fanout.stop());
    await bounded(this.queues.close());
    this.notifier.flush();
    this.redis.disconnect();
    this.workerRedis.disconnect();
  }

  /** Persists the commands (one state commit), then enqueues: directly for one environment, else through the fan-out queue. */
  async queue(p: CommandsQueueParams): Promise<CommandsQueueResult> {
    const problems = p.commands.map((spec, index) => ({ index, message: specProblem(spec) })).filter((x) => x.message);
    if (problems.length) throw new BadRequestError('Invalid command', problems);
    const { batch, commands } = await call(this.broker, 'state.queueCommands', {
      environmentIds: p.environmentIds, commands: p.commands.map(toCommandInput), stopOnFailure: p.stopOnFailure ?? false, createdBy: p.createdBy,
    });
    let deferred = false;
    try {
      if (batch.Environments === 1 && commands) {
        await this.queues.add(commands[0].EnvironmentId, commands.map(jobOf));
        await this.queues.setEnqueued(batch.BatchId, batch.Total);
      } else {
        await this.fanout.add(batch.BatchId, batch.Total);
      }
    } catch (err) {
      deferred = true;
      this.log.warn({ batchId: batch.BatchId, err: (err as Error).message }, 'commands: persisted but not enqueued (Redis unreachable); reconciliation delivers them once it is back');
      void this.reconciler.request();
    }
    const out: CommandsQueueResult = { BatchId: batch.BatchId, Queued: batch.Total, Deferred: deferred };
    if (batch.Environments === 1 && commands) {
      out.Commands = commands.map((r) => {
        const v = commandView(r);
        return { Id: v.Id, EnvironmentId: v.EnvironmentId, Seq: v.Seq, Status: v.Status, Type: v.Type, Timestamp: v.Timestamp };
      });
    }
    return out;
  }

  /**
   * The unbroken run of `page` that follows `afterSeq`. Seqs are consecutive per environment, so a
   * gap is either commands already finished (the agent's cursor is behind: a new journal) or
   * commands not in the queue yet (a fan-out still adding them): the ledger tells which.
   */
  private async unbroken(id: number, afterSeq: number, page: { jobs: CommandJob[]; more: boolean }): Promise<{ jobs: CommandJob[]; more: boolean }> {
    const first = page.jobs[0].seq;
    if (first !== afterSeq + 1) {
      const lowest = await this.lowestUnfinished(id);
      if (lowest !== undefined && lowest < first) {
        void this.reconciler.request();
        return { jobs: [], more: false };
      }
    }
    let n = 1;
    while (n < page.jobs.length && page.jobs[n].seq === page.jobs[n - 1].seq + 1) n++;
    return n === page.jobs.length ? page : { jobs: page.jobs.slice(0, n), more: true };
  }

  /** The environment's lowest queued or delivered seq in the ledger. */
  private async lowestUnfinished(id: number): Promise<number | undefined> {
    const [queued, delivered] = await Promise.all((['queued', 'delivered'] as const).map((status) => call(this.broker, 'state.listCommands', { id, status, limit: 1 })));
    const seqs = [...queued.items, ...delivered.items].map((r) => r.Seq);
    return seqs.length ? Math.min(...seqs) : undefined;
  }

  async batch(batchId: string): Promise<CommandBatch> {
    const rec = await call(this.broker, 'state.getCommandBatch', { batchId });
    const enqueued = await this.queues.getEnqueued(batchId).catch(() => null);
    return { ...rec, Enqueued: enqueued };
  }

  async pending(p: PendingParams): Promise<PendingResult> {
    let page;
    try {
      // Until the queues hold every pending command of the ledger, a newer command could be
      // handed out ahead of older ones still missing (Redis came back empty, or was never filled).
      if (!(await this.redis.exists(this.reconciledKey))) {
        void this.reconciler.request();
        throw new Error('the delivery queues are being rebuilt from the ledger');
      }
      page = await this.queues.pending(p.id, p.afterSeq ?? 0, p.limit ?? 50, PENDING_BYTES);
    } catch (err) {
      throw new CommandsUnavailableError(err);
    }
    if (p.contiguous && page.jobs.length) page = await this.unbroken(p.id, p.afterSeq ?? 0, page);
    return {
      commands: page.jobs.map((j) => ({ id: j.seq, seq: j.seq, type: j.type, endpointID: p.id, timestamp: j.timestamp, op: '', path: '', value: j.value, stopOnFailure: j.stopOnFailure })),
      more: page.more,
    };
  }

  /** Not awaited: deliveries are written with the next flush. */
  delivered(p: DeliveredParams): { ok: boolean } {
    const at = unixNow();
    if (p.seqs.length) {
      this.writer.submit(p.seqs.map((seq) => ({ id: p.id, seq, status: 'delivered', at }))).catch(() => undefined);
    }
    return { ok: true };
  }

  async ack(p: AckParams): Promise<AckResult> {
    const now = unixNow();
    const updates: CommandUpdate[] = p.acks.map((a) => ({
      id: p.id, seq: a.seq, status: a.status,
      at: a.finishedAt !== undefined && a.finishedAt > 0 && a.finishedAt <= now + MAX_SKEW_S ? a.finishedAt : now,
      ...(a.error !== undefined ? { error: a.error.slice(0, MAX_ERROR_CHARS) } : {}),
      ...(a.result !== undefined ? { result: boundedResult(a.result) } : {}),
    }));
    const watermarks = p.watermarkSeq !== undefined ? [{ id: p.id, seq: p.watermarkSeq, at: now }] : [];
    if (!updates.length && (!watermarks.length || await this.nothingUpTo(p.id, (j) => j.seq <= p.watermarkSeq!))) return { finished: [] };
    return this.finishedOf(p.id, await this.writer.submit(updates, watermarks));
  }

  async ackUntilTimestamp(p: AckUntilTimestampParams): Promise<AckResult> {
    if (Number.isNaN(Date.parse(p.timestamp))) throw new BadRequestError('Invalid timestamp: expected RFC 3339', { timestamp: p.timestamp });
    const until = Date.parse(p.timestamp);
    if (await this.nothingUpTo(p.id, (j) => Date.parse(j.timestamp) <= until)) return { finished: [] };
    return this.finishedOf(p.id, await this.writer.submit([], [{ id: p.id, timestamp: p.timestamp, at: unixNow() }]));
  }

  /**
   * True when the environment's queue holds no command a watermark reaches (its lowest one does
   * not: seqs and timestamps grow together), so the check-in of an idle agent costs no state call.
   * False when unsure (Redis unreachable): state decides.
   */
  private async nothingUpTo(id: number, reached: (j: CommandJob) => boolean): Promise<boolean> {
    try {
      const first = await this.queues.lowest(id);
      return first === null || !reached(first);
    } catch {
      return false;
    }
  }

  private finishedOf(id: number, r: UpdateCommandsResult): AckResult {
    return { finished: [...new Set(r.final.filter((f) => f.id === id).map((f) => f.seq))].sort((a, b) => a - b) };
  }

  private async removeFinished(final: UpdateCommandsResult['final']): Promise<void> {
    const byEnv = new Map<number, number[]>();
    for (const f of final) byEnv.set(f.id, [...(byEnv.get(f.id) ?? []), f.seq]);
    await pool([...byEnv], 16, ([env, seqs]) => this.queues.remove(env, seqs));
  }

  private warnRedis(err: Error): void {
    const t = Date.now();
    this.redisDown = true;
    if (t - this.lastWarn < WARN_EVERY_MS) {
      this.log.debug({ err: err.message }, 'commands: Redis connection problem');
      return;
    }
    this.lastWarn = t;
    this.log.warn({ err: err.message }, 'commands: Redis unreachable; commands are persisted and delivered once it is back');
  }
}
