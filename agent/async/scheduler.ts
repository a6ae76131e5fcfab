/** What a request must carry besides the ping every request is. */
export interface Flags {
  snapshot?: boolean;
  command?: boolean;
}

/** Timer periods in milliseconds; ≤ 0 disables that timer. */
export interface Intervals {
  pingMs: number;
  snapshotMs: number;
  commandMs: number;
}

/** Timing knobs (defaults are the agent's; tests shorten them). */
export interface SchedulerOptions {
  /** How long a tick waits for others before the request leaves. Default 100 ms (reference 2.4). */
  coalesceMs?: number;
  /** Every timer's period until the first reply. Default 60 s. */
  initialIntervalMs?: number;
  /** Shortest period a server may set, so a wrong reply cannot make the agent spin. Default 1 s. */
  minIntervalMs?: number;
}

/** Sends one request carrying `flags`; false (or a throw) means it must be retried. */
export type Send = (flags: Flags) => Promise<boolean>;

/** Period of the ping that stands in when a reply disables all three timers. */
export const FALLBACK_PING_MS = 60_000;
/** While on the push channel commands come by nudge; this slow command timer is the safety net. */
export const PUSHED_COMMAND_MS = 5 * 60_000;

type Kind = keyof Intervals;
const FLAGS_OF: Record<Kind, Flags> = { pingMs: {}, snapshotMs: { snapshot: true }, commandMs: { command: true } };

/**
 * The async agent's clock (reference 2.4): three timers (ping, snapshot, command); a tick, or an
 * explicit `trigger`, opens a coalescing window at whose end one request leaves carrying the union
 * of the flags raised meanwhile. One request at a time: flags raised while one is in flight wait
 * for it. A failed request keeps its flags and is retried after a random delay in
 * [0, ping period), so a fleet coming back does not hit the server in step.
 */
export class Scheduler {
  private readonly coalesceMs: number;
  private readonly minIntervalMs: number;
  private intervals: Intervals;
  private readonly timers = new Map<Kind, NodeJS.Timeout>();
  private pending: Flags = {};
  private wanted = false;
  private phase: 'idle' | 'window' | 'sending' | 'backoff' = 'idle';
  private wake: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private pushed = false;

  constructor(private readonly send: Send, private readonly onError: (err: Error) => void, opts: SchedulerOptions = {}) {
    this.coalesceMs = opts.coalesceMs ?? 100;
    this.minIntervalMs = opts.minIntervalMs ?? 1000;
    const initial = opts.initialIntervalMs ?? 60_000;
    this.intervals = { pingMs: initial, snapshotMs: initial, commandMs: initial };
  }

  /** The periods in force (after the fallback rule). */
  get current(): Intervals {
    return { ...this.intervals };
  }

  /** Arms the timers and sends `first` at once, without waiting for a window. */
  start(first: Flags): void {
    for (const kind of Object.keys(FLAGS_OF) as Kind[]) this.arm(kind);
    this.merge(first);
    void this.flush();
  }

  /** Asks for a request carrying `flags` (at the end of the current or a new window). */
  trigger(flags: Flags = {}): void {
    if (this.stopped) return;
    this.merge(flags);
    if (this.phase === 'idle') this.openWindow();
  }

  /**
   * Applies a reply's periods; only a timer whose period changed is re-armed. When all three are
   * disabled a 1-minute ping stands in. Returns whether anything changed.
   */
  setIntervals(next: Intervals): boolean {
    const clamp = (ms: number) => (ms > 0 ? Math.max(ms, this.minIntervalMs) : 0);
    const wanted: Intervals = { pingMs: clamp(next.pingMs), snapshotMs: clamp(next.snapshotMs), commandMs: clamp(next.commandMs) };
    if (wanted.pingMs <= 0 && wanted.snapshotMs <= 0 && wanted.commandMs <= 0) wanted.pingMs = FALLBACK_PING_MS;
    let changed = false;
    for (const kind of Object.keys(FLAGS_OF) as Kind[]) {
      if (wanted[kind] === this.intervals[kind]) continue;
      this.intervals[kind] = wanted[kind];
      changed = true;
      if (!this.stopped) this.arm(kind);
    }
    return changed;
  }

  /**
   * On the push channel (true) the ping timer stops (the connection is the heartbeat) and the
   * command timer slows to PUSHED_COMMAND_MS (nudges bring commands); the snapshot timer stays.
   * Off again (false), the server's periods are back.
   */
  setPushed(on: boolean): void {
    if (this.pushed === on) return;
    this.pushed = on;
    if (this.stopped) return;
    this.arm('pingMs');
    this.arm('commandMs');
  }

  /** The period a timer runs at now. */
  private period(kind: Kind): number {
    const ms = this.intervals[kind];
    if (!this.pushed) return ms;
    if (kind === 'pingMs') return 0;
    if (kind === 'commandMs') return Math.max(ms, PUSHED_COMMAND_MS);
    return ms;
  }

  /** Stops every timer; resolves once the request in flight (if any) has been handled. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
    clearTimeout(this.wake);
    await this.inFlight;
  }

  private arm(kind: Kind): void {
    clearInterval(this.timers.get(kind));
    this.timers.delete(kind);
    const ms = this.period(kind);
    if (ms > 0) this.timers.set(kind, setInterval(() => this.trigger(FLAGS_OF[kind]), ms));
  }

  private merge(flags: Flags): void {
    this.wanted = true;
    if (flags.snapshot) this.pending.snapshot = true;
    if (flags.command) this.pending.command = true;
  }

  private openWindow(): void {
    this.phase = 'window';
    this.wake = setTimeout(() => void this.flush(), this.coalesceMs);
  }

  private async flush(): Promise<void> {
    if (this.stopped) return;
    const flags = this.pending;
    this.pending = {};
    this.wanted = false;
    this.phase = 'sending';
    let ok = false;
    let done!: () => void;
    this.inFlight = new Promise((resolve) => (done = resolve));
    try {
      ok = await this.send(flags);
    } catch (err) {
      this.onError(err as Error);
    } finally {
      done();
    }
    if (this.stopped) return;
    if (!ok) {
      this.merge(flags);
      this.phase = 'backoff';
      const base = this.intervals.pingMs > 0 ? this.intervals.pingMs : FALLBACK_PING_MS;
      this.wake = setTimeout(() => void this.flush(), Math.floor(Math.random() * base));
      return;
    }
    this.phase = 'idle';
    if (this.wanted) this.openWindow();
  }
}
