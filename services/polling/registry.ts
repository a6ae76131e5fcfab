import {
  asyncHeartbeatInterval, effectiveAsyncIntervals, settingsAsyncIntervals,
  type AsyncIntervals, type EdgeEnvironment, type Revision, type Settings, type SettingsChanged, type TunnelChanged,
} from '../../shared/contracts';
import { encodeEdgeStatus, type EncodedEdgeStatus } from '../../shared/protocol';

/** A tunnel as the tunnel service last described it (credentials encrypted for `edgeId`). */
export type TunnelState = Omit<TunnelChanged, 'id'>;

/** What one polling replica knows of one Edge environment. */
export interface Entry {
  env: EdgeEnvironment;
  /** Last check-in seen, unix seconds (from the store at seeding, then live). */
  heartbeat: number;
  /** The current reply and its ETag; dropped whenever anything in it may have changed. */
  reply?: EncodedEdgeStatus;
  tunnel?: TunnelState;
  /** Registry generation of the last change applied from state (see {@link EdgeRegistry.reseed}). */
  gen: number;
}

/** `a` is older than `b`. */
export const olderRev = (a: Revision, b: Revision) => a.fence < b.fence || (a.fence === b.fence && a.seq < b.seq);

/**
 * The in-memory view a check-in is answered from: Edge environments by id, their heartbeats, the
 * cached reply with its ETag, and the tunnel flag. Every view from state carries a revision, so
 * a late answer or event can never overwrite a newer one. Nothing here does I/O.
 */
export class EdgeRegistry {
  private readonly entries = new Map<number, Entry>();
  private gen = 0;
  settings: SettingsChanged = { EdgeAgentCheckinInterval: 5, TrustOnFirstConnect: false, Async: settingsAsyncIntervals({ Edge: { PingInterval: 0, SnapshotInterval: 0, CommandInterval: 0, AsyncMode: false }, SnapshotInterval: '5m' }) };
  /** Called when an environment's agent changed or it was removed: its pending heartbeat is void. */
  onAgentGone: (id: number) => void = () => undefined;
  /** Called when an environment's reply (or async timers) may have changed: pushed agents hear of it. */
  onChanged: (id: number) => void = () => undefined;

  get(id: number): Entry | undefined {
    return this.entries.get(id);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The effective check-in interval: the environment's own, else the settings'; async: its shortest timer. */
  interval(e: Entry): number {
    if (e.env.AsyncMode) return asyncHeartbeatInterval(this.asyncIntervals(e));
    return e.env.EdgeCheckinInterval || this.settings.EdgeAgentCheckinInterval;
  }

  /** The timers an async agent runs (seconds). */
  asyncIntervals(e: Entry): AsyncIntervals {
    return effectiveAsyncIntervals(e.env.AsyncIntervals, this.settings.Async);
  }

  /** Applies a view from state unless a newer one was applied already. True when applied. */
  apply(env: EdgeEnvironment): boolean {
    const cur = this.entries.get(env.Id);
    if (cur && olderRev(env.Rev, cur.env.Rev)) return false;
    const gen = ++this.gen;
    if (!cur) {
      this.entries.set(env.Id, { env, heartbeat: env.LastCheckInDate, gen });
      return true;
    }
    const agentChanged = cur.env.EdgeID !== '' && cur.env.EdgeID !== env.EdgeID;
    cur.env = env;
    cur.gen = gen;
    cur.reply = undefined;
    if (agentChanged) {
      // Re-paired: the old agent's heartbeats and tunnel credentials mean nothing for the new one.
      cur.heartbeat = env.LastCheckInDate;
      cur.tunnel = undefined;
      this.onAgentGone(env.Id);
    } else cur.heartbeat = Math.max(cur.heartbeat, env.LastCheckInDate);
    this.onChanged(env.Id);
    return true;
  }

  /** Removes an environment (deleted, or no longer Edge) unless a newer view was applied. */
  remove(id: number, rev: Revision): void {
    const cur = this.entries.get(id);
    if (!cur || olderRev(rev, cur.env.Rev)) return;
    this.entries.delete(id);
    this.onAgentGone(id);
  }

  /** The current generation: pass it to {@link reseed} to know what changed since. */
  generation(): number {
    return this.gen;
  }

  /**
   * Applies a full list read from state; environments absent from it are dropped unless an event
   * applied them after `since` (they were created after the list was read).
   */
  reseed(list: EdgeEnvironment[], since: number): void {
    const present = new Set<number>();
    for (const env of list) {
      present.add(env.Id);
      this.apply(env);
    }
    for (const [id, e] of this.entries) {
      if (!present.has(id) && e.gen <= since) {
        this.entries.delete(id);
        this.onAgentGone(id);
      }
    }
  }

  /** New settings: replies that use the default interval are rebuilt on the next check-in. */
  setSettings(s: SettingsChanged | Settings): void {
    const intervalChanged = s.EdgeAgentCheckinInterval !== this.settings.EdgeAgentCheckinInterval;
    const Async = 'Async' in s ? s.Async : settingsAsyncIntervals(s);
    this.settings = { EdgeAgentCheckinInterval: s.EdgeAgentCheckinInterval, TrustOnFirstConnect: s.TrustOnFirstConnect, Async };
    if (!intervalChanged) return;
    for (const e of this.entries.values()) if (!e.env.EdgeCheckinInterval) e.reply = undefined;
  }

  /** Applies a tunnel change unless it is older than the one known. True when something changed. */
  setTunnel(t: TunnelChanged): boolean {
    const e = this.entries.get(t.id);
    if (!e) return false;
    const cur = e.tunnel;
    if (cur?.version !== undefined && t.version !== undefined && t.version < cur.version) return false;
    const next: TunnelState = { status: t.status, port: t.port, credentials: t.credentials, edgeId: t.edgeId, version: t.version ?? cur?.version };
    if (cur && cur.status === next.status && cur.port === next.port && cur.credentials === next.credentials && cur.edgeId === next.edgeId) {
      cur.version = next.version;
      return false;
    }
    e.tunnel = next.status === 'IDLE' && next.version === undefined ? undefined : next;
    e.reply = undefined;
    this.onChanged(t.id);
    return true;
  }

  /** The reply of this environment now, built once and kept until something in it changes. */
  reply(e: Entry): EncodedEdgeStatus {
    if (e.reply) return e.reply;
    const t = e.tunnel;
    // Credentials are only valid for the agent they were encrypted for.
    const required = t?.status === 'REQUIRED' && t.edgeId === e.env.EdgeID && e.env.EdgeID !== '';
    e.reply = encodeEdgeStatus({
      status: required ? 'REQUIRED' : 'IDLE',
      port: required ? t.port : 0,
      schedules: [],
      checkin: this.interval(e),
      credentials: required ? t.credentials : '',
      stacks: [],
    });
    return e.reply;
  }
}
