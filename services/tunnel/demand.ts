import type { ServiceBroker } from 'moleculer';
import { call } from '../../shared/contracts';
import { AppError } from '../../shared/errors';
import type { TunnelRegistry } from './registry';
import type { Log } from './session';

/** A tunnel used within this window is re-offered at once when its session drops. */
const RECENT_USE_MS = 30_000;

/** The agent did not connect its tunnel in time: the environment is unreachable right now. */
export class TunnelTimeoutError extends AppError {
  constructor(id: number, waitedMs: number) {
    super('The environment did not open its tunnel in time; its agent may be offline', 504, 'TUNNEL_TIMEOUT', { id, waitedMs }, { retryable: true });
  }
}

/** The tunnel was closed while a call waited for it: the environment is unreachable right now. */
export class TunnelGoneError extends AppError {
  constructor(id: number) {
    super('The environment\'s tunnel was closed before it could be used', 503, 'TUNNEL_CLOSED', { id }, { retryable: true });
  }
}

/**
 * When tunnels are wanted. A Docker call asks for one (`ensure`): the registry issues one-time
 * credentials, polling answers REQUIRED with them, and the call resolves once the agent's session
 * is connected. A tunnel that drops while still in use is offered again at once with fresh
 * credentials; one idle for `idleMs` is closed and polling goes back to IDLE.
 */
export class TunnelDemand {
  private readonly waiters = new Map<number, Set<() => void>>();
  // Grows across restarts too, so polling never takes a newer order for an older one.
  private version = Date.now() * 1000;

  constructor(private readonly registry: TunnelRegistry, private readonly broker: ServiceBroker, private readonly log: Log, private readonly idleMs: number) {}

  /** The environment's tunnel (virtual port and token) once its agent is connected. */
  async ensure(id: number): Promise<{ port: number; token: string }> {
    if (this.registry.status(id).open) {
      this.registry.touch(id);
      return this.route(id);
    }
    const opened = this.waitOpen(id);
    await this.require(id);
    // Portainer waits up to twice the check-in interval for the agent to see REQUIRED.
    const hb = await call(this.broker, 'polling.heartbeats', { ids: [id] }, { timeout: 2000 }).catch(() => undefined);
    const waitMs = 2 * (hb?.items[0]?.checkinInterval || 5) * 1000 + 5000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([opened.promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new TunnelTimeoutError(id, waitMs)), waitMs)))]);
    } finally {
      clearTimeout(timer);
      opened.cancel();
    }
    return this.route(id);
  }

  /** The agent's session is connected: wake every call waiting for this environment. */
  connected(id: number): void {
    for (const wake of this.waiters.get(id) ?? []) wake();
    this.waiters.delete(id);
  }

  /**
   * The agent's session ended on its own: offer the tunnel again if it was in use moments ago. An
   * agent closing an idle tunnel (its EDGE_INACTIVITY_TIMEOUT) saw no use for longer than that.
   */
  dropped(id: number): void {
    const st = this.registry.status(id);
    if (st.port && Date.now() - st.lastActivity < Math.min(this.idleMs, RECENT_USE_MS)) {
      this.require(id).catch((err) => this.log.warn({ id, err: (err as Error).message }, 'tunnel: could not re-offer a dropped tunnel'));
    }
  }

  /**
   * Closes tunnels idle for longer than `idleMs` and tells their agents to stand down, taking a
   * snapshot through each one first (reference 5.2) while it is still open.
   */
  async reap(): Promise<number> {
    const cutoff = Date.now() - this.idleMs;
    let closed = 0;
    for (const entry of this.registry.all()) {
      if (entry.lastActivity >= cutoff) continue;
      // Asked for and not connected yet: the callers' own timeout decides, not the idle limit.
      if (this.waiters.get(entry.id)?.size) continue;
      if (this.registry.status(entry.id).open) {
        await call(this.broker, 'snapshots.take', { id: entry.id }, { timeout: 60_000 })
          .catch((err: Error) => this.log.warn({ id: entry.id, err: err.message }, 'tunnel: no snapshot before closing an idle tunnel'));
      }
      // IDLE first: an agent that reads it before its session ends closes on its own, not as a drop.
      await call(this.broker, 'polling.setTunnel', { id: entry.id, status: 'IDLE', version: ++this.version }).catch(() => undefined);
      // Polling pushes the new reply at the end of this turn; let it leave before the session goes.
      await new Promise((resolve) => setImmediate(resolve));
      await call(this.broker, 'tunnel.closeTunnel', { id: entry.id }).catch(() => undefined);
      closed++;
    }
    return closed;
  }

  private async require(id: number): Promise<void> {
    const { port, credentials } = this.registry.open(id);
    await call(this.broker, 'polling.setTunnel', { id, status: 'REQUIRED', port, credentials, version: ++this.version });
  }

  private route(id: number): { port: number; token: string } {
    const route = this.registry.route(id);
    if (!route) throw new TunnelGoneError(id);
    return route;
  }

  private waitOpen(id: number): { promise: Promise<void>; cancel(): void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => (wake = resolve));
    const set = this.waiters.get(id) ?? new Set();
    set.add(wake);
    this.waiters.set(id, set);
    return { promise, cancel: () => set.delete(wake) };
  }
}
