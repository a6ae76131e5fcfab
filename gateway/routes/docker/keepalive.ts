import type { ServiceBroker } from 'moleculer';
import { call } from '../../../shared/contracts';

/**
 * Keeps tunnels alive while long requests or interactive sessions through them are open: a
 * quiet `logs -f`, an `exec -it` nobody types into, an `events` stream. Bytes crossing a tunnel
 * count as activity already; this covers the silences, which would otherwise let the tunnel
 * service reap the tunnel under an open session. One timer for the gateway, one touch per
 * environment per period, however many sessions it has.
 */
export class TunnelKeepAlive {
  private readonly open = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  /** `periodMs`: how often an environment with open streams or sessions marks its tunnel in use. */
  constructor(private readonly broker: ServiceBroker, private readonly periodMs: number) {}

  /** Counts a session on environment `id` until the returned function is called (once). */
  hold(id: number): () => void {
    this.open.set(id, (this.open.get(id) ?? 0) + 1);
    if (!this.timer) {
      this.timer = setInterval(() => this.touchAll(), this.periodMs);
      this.timer.unref();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.open.get(id) ?? 1) - 1;
      if (n > 0) this.open.set(id, n);
      else this.open.delete(id);
      if (!this.open.size) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Environments with at least one open session. */
  get environments(): number[] {
    return [...this.open.keys()];
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.open.clear();
  }

  private touchAll(): void {
    for (const id of this.open.keys()) void call(this.broker, 'tunnel.touch', { id }).catch(() => undefined);
  }
}
