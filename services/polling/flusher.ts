import type { Logger } from 'moleculer';

/** How often heartbeats are written to state. Lists stay live in between through `polling.heartbeats`. */
export const FLUSH_INTERVAL_MS = 5000;
/**
 * Most heartbeats in one `state.recordCheckins` call (one commit). 15,000 agents at 5 s all
 * change every flush: small commits one after the other keep each one short, so check-ins served
 * by the same process in the meantime never wait behind one big commit.
 */
export const FLUSH_BATCH = 1000;

/**
 * Collects last check-ins in memory and writes them to state in batches, so a check-in never
 * waits for (or causes) a store write of its own. A failed batch is kept for the next round;
 * a newer check-in of the same environment replaces an older pending one.
 */
export class HeartbeatFlusher {
  private pending = new Map<number, number>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopping = false;

  constructor(
    private readonly send: (items: { id: number; at: number }[]) => Promise<unknown>,
    private readonly log?: Pick<Logger, 'warn' | 'debug'>,
    private readonly intervalMs = FLUSH_INTERVAL_MS,
  ) {}

  /** Records a check-in of environment `id` at `at` (unix seconds). */
  mark(id: number, at: number): void {
    const cur = this.pending.get(id);
    if (cur === undefined || at > cur) this.pending.set(id, at);
  }

  /** Drops a pending heartbeat (the environment's agent changed or it was deleted). */
  forget(id: number): void {
    this.pending.delete(id);
  }

  get size(): number {
    return this.pending.size;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and makes one last attempt to write what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopping = true;
    await this.flush();
  }

  /** Writes everything pending now, in batches; one flush at a time. */
  flush(): Promise<void> {
    this.running ??= this.drain().finally(() => (this.running = undefined));
    return this.running;
  }

  private async drain(): Promise<void> {
    if (!this.pending.size) return;
    const taken = this.pending;
    this.pending = new Map();
    const items = [...taken].map(([id, at]) => ({ id, at }));
    for (let i = 0; i < items.length; i += FLUSH_BATCH) {
      const batch = items.slice(i, i + FLUSH_BATCH);
      try {
        await this.send(batch);
      } catch (err) {
        // Keep them for the next round (unless a newer check-in arrived meanwhile).
        for (const { id, at } of items.slice(i)) this.mark(id, at);
        // At shutdown state may be stopping too; the agents' next check-ins bring the heartbeats back.
        if (this.stopping) this.log?.debug({ err: (err as Error).message, pending: this.pending.size }, 'heartbeats not flushed at stop');
        else this.log?.warn({ err: (err as Error).message, pending: this.pending.size }, 'heartbeat flush failed; will retry');
        return;
      }
    }
  }
}
