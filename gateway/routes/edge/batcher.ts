import type { Errors, ServiceBroker } from 'moleculer';
import { call, CHECKIN_BATCH_MAX, type CheckinBatchResult, type CheckinParams, type CheckinResult } from '../../../shared/contracts';

/** Options of a {@link CheckinBatcher}. */
export interface CheckinBatcherOptions {
  /** How long the first check-in of a batch waits for others (ms, CAPSTAN_CHECKIN_BATCH_MS). */
  windowMs: number;
  /** Largest batch (at most {@link CHECKIN_BATCH_MAX}); a full batch is sent at once. */
  maxItems?: number;
}

interface Waiting {
  params: CheckinParams;
  resolve(r: CheckinResult): void;
  reject(err: unknown): void;
}

/**
 * Check-ins for a polling service in another process, gathered into one `polling.checkinBatch`
 * call per short window instead of one transporter round trip each: a request and its reply cost
 * the gateway, NATS and polling far more CPU than the check-in itself (a syscall, a wake-up and a
 * Moleculer context per message). Every agent still gets exactly what `polling.checkin` would
 * have answered or thrown, so the route's replies and error mapping are unchanged.
 */
export class CheckinBatcher {
  private queue: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly windowMs: number;
  private readonly maxItems: number;
  private readonly regenerator: Errors.Regenerator;

  constructor(private readonly broker: ServiceBroker, opts: CheckinBatcherOptions) {
    this.windowMs = opts.windowMs;
    this.maxItems = Math.min(opts.maxItems ?? CHECKIN_BATCH_MAX, CHECKIN_BATCH_MAX);
    this.regenerator = broker.errorRegenerator!;
  }

  /** One agent's check-in: resolves with polling's answer for it, or rejects with its error. */
  checkin(params: CheckinParams): Promise<CheckinResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ params, resolve, reject });
      if (this.queue.length >= this.maxItems) this.flush();
      else this.timer ??= setTimeout(this.flush, this.windowMs);
    });
  }

  private readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length) void this.send(batch, true);
  };

  /** Sends one batch; `node`: the replica where its items wait on state, asked to answer them all. */
  private async send(batch: Waiting[], mayRetry: boolean, node?: string): Promise<void> {
    let res: CheckinBatchResult;
    try {
      const items = batch.map((w) => w.params);
      res = await call(this.broker, 'polling.checkinBatch', node ? { items, wait: true } : { items }, node ? { nodeID: node } : undefined);
    } catch (err) {
      // The replica holding the batch left (its node was declared gone). Doing a check-in twice
      // is harmless (a heartbeat, an idempotent binding), so the batch goes to another replica
      // once. Anything else (not ready, timeout, no replica) is every item's error, as it would
      // have been for each call on its own: the route answers 503 with Retry-After.
      if (mayRetry && (err as Error | undefined)?.name === 'RequestRejectedError') return this.send(batch, false);
      for (const w of batch) w.reject(err);
      return;
    }
    const waiting: Waiting[] = [];
    batch.forEach((w, i) => {
      const r = res.items[i];
      if (!r || ('pending' in r && node)) w.reject(new Error(`polling.checkinBatch gave no answer for check-in ${i} of ${batch.length}`));
      else if ('failed' in r) w.reject(this.regenerator.restore(r.failed as Errors.PlainMoleculerError, { sender: res.node }));
      else if ('pending' in r) waiting.push(w);
      else w.resolve(r);
    });
    // Waiting on state at that replica (first bindings): asked together again, to be answered
    // there when done; they join the bindings in flight.
    if (waiting.length) await this.send(waiting, mayRetry, res.node);
  }
}
