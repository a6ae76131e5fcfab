import type { Logger } from 'moleculer';
import type { PendingCommandsResult } from '../../shared/contracts';
import { pool } from '../../shared/concurrency';
import { byEnvironment } from './fanout';
import { jobOf, type DeliveryQueues } from './queues';

const PAGE = 1000;
const CONCURRENCY = 32;

/**
 * Rebuilds the delivery queues from the ledger: pages through every queued or delivered command
 * (`state.pendingCommands`) and adds it again, which does nothing for jobs that exist. Run at
 * start and whenever the Redis connection becomes ready again, so a Redis that comes back empty
 * loses nothing. Requests during a run make it run once more; failures retry with backoff.
 */
export class Reconciler {
  private running: Promise<number> | null = null;
  private again = false;
  private stopped = false;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: {
    queues: DeliveryQueues;
    readPending: (afterKey: string | undefined, limit: number) => Promise<PendingCommandsResult>;
    log: Pick<Logger, 'info' | 'warn' | 'debug'>;
    /** Called before a pass; its token is handed to `afterPass` when the pass completed. */
    beforePass?: () => number;
    /** A complete pass: every pending command of the ledger is in the queues (as of `token`). */
    afterPass?: (token: number) => Promise<void>;
  }) {}

  /** Starts a run (or asks the current one to run again); resolves with the commands re-added. */
  request(): Promise<number> {
    if (this.running) {
      this.again = true;
      this.wake?.();
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private async loop(): Promise<number> {
    let total = 0;
    do {
      this.again = false;
      total += await this.withRetry();
    } while (this.again && !this.stopped);
    return total;
  }

  private async withRetry(): Promise<number> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        return await this.once();
      } catch (err) {
        const delay = Math.min(10_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.opts.log[attempt < 3 ? 'debug' : 'warn']({ err: (err as Error).message, retryInMs: Math.round(delay) }, 'commands: reconciliation failed');
        // A new request (Redis ready again) cuts the wait short.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
      }
    }
    return 0;
  }

  /** One pass over the ledger's pending commands. */
  async once(): Promise<number> {
    const token = this.opts.beforePass?.() ?? 0;
    let added = 0;
    let afterKey: string | undefined;
    for (;;) {
      const page = await this.opts.readPending(afterKey, PAGE);
      await pool(byEnvironment(page.commands), CONCURRENCY, ([env, records]) => this.opts.queues.add(env, records.map(jobOf)));
      added += page.commands.length;
      if (!page.nextKey || this.stopped) break;
      afterKey = page.nextKey;
    }
    if (added) this.opts.log.info({ commands: added }, 'commands: delivery queues reconciled with the ledger');
    if (!this.stopped) await this.opts.afterPass?.(token);
    return added;
  }
}
