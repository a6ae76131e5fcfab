import type { Errors, ServiceBroker } from 'moleculer';
import { call, CHECKIN_BATCH_MAX, type CheckinBatchResult, type CheckinParams, type CheckinResult } from '../../../shared/contracts';

/** How long the first check-in of a batch waits for others, by default (ms). */
export const CHECKIN_BATCH_WINDOW_MS = 2;

/** Options of a {@link CheckinBatcher}. */
export interface CheckinBatcherOptions {
  /** How long the first check-in of a batch waits for others (ms); 0: until the end of this event-loop turn. */
  windowMs?: number;
  /** Largest batch (at most {@link CHECKIN_BATCH_MAX}); a full batch is sent at once. */
  maxItems?: number;
}

interface Waiting {
  params: CheckinParams;
  resolve(r: CheckinResult | Promise<CheckinResult>): void;
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
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly windowMs: number;
  private readonly maxItems: number;
  private readonly regenerator: Errors.Regenerator;

  constructor(private readonly broker: ServiceBroker, opts: CheckinBatcherOptions = {}) {
    this.windowMs = opts.windowMs ?? CHECKIN_BATCH_WINDOW_MS;
    this.maxItems = Math.min(opts.maxItems ?? CHECKIN_BATCH_MAX, CHECKIN_BATCH_MAX);
    this.regenerator = broker.errorRegenerator!;
  }

  /** One agent's check-in: resolves with polling's answer for it, or rejects with its error. */
  checkin(params: CheckinParams): Promise<CheckinResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ params, resolve, reject });
      if (this.queue.length >= this.maxItems) this.flush();
      else if (!this.timer) this.timer = this.windowMs > 0 ? setTimeout(this.flush, this.windowMs) : setImmediate(this.flush);
    });
  }

  private readonly flush = (): void => {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = undefined;
    }
    const batch = this.queue;
    this.queue = [];
    if (batch.length) void this.send(batch, true);
  };

  private async send(batch: Waiting[], mayRetry: boolean): Promise<void> {
    let res: CheckinBatchResult;
    try {
      res = await call(this.broker, 'polling.checkinBatch', { items: batch.map((w) => w.params) });
    } catch (err) {
      // The replica holding the batch left (its node was declared gone). Doing a check-in twice
      // is harmless (a heartbeat, an idempotent binding), so the batch goes to another replica
      // once. Anything else (not ready, timeout, no replica) is every item's error, as it would
      // have been for each call on its own: the route answers 503 with Retry-After.
      if (mayRetry && (err as Error | undefined)?.name === 'RequestRejectedError') return this.send(batch, false);
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => {
      const r = res.items[i];
      if (!r) w.reject(new Error(`polling.checkinBatch answered ${res.items.length} of ${batch.length} check-ins`));
      else if ('failed' in r) w.reject(this.regenerator.restore(r.failed as Errors.PlainMoleculerError, { sender: res.node }));
      // Waiting on state (a first binding) at that replica: asking it again joins that binding.
      else if ('pending' in r) w.resolve(call(this.broker, 'polling.checkin', w.params, { nodeID: res.node }));
      else w.resolve(r);
    });
  }
}
