import { LRUCache } from 'lru-cache';
import type { Context, Logger, ServiceBroker } from 'moleculer';
import {
  call, EdgeEvents, PushEvents, SnapshotEvents,
  type EdgeEnvironment, type EnvironmentChanged, type Heartbeat, type PushAliveResult, type PushOpenParams, type PushOpenResult, type SetTunnelParams,
  type SettingsChanged, type TunnelChanged,
} from '../../shared/contracts';
import { AppError, BadRequestError, NotFoundError } from '../../shared/errors';
import { encryptCredentials } from '../../shared/protocol';
import { AsyncExchangeHandler } from './async';
import { CheckinHandler } from './checkin';
import { HeartbeatFlusher } from './flusher';
import { PushTracker } from './push';
import { EdgeRegistry } from './registry';

const unixNow = () => Math.floor(Date.now() / 1000);
/** How long `started` waits for the first seeding before going on in the background. */
const SEED_WAIT_MS = 10_000;
/** A second seeding this long after start, once discovery has announced this replica's listeners. */
const RESEED_AFTER_START_MS = 3000;
/** And one every so often: a safety net for events lost in transit. */
const RESEED_EVERY_MS = 5 * 60_000;
/** How long an id state did not know is answered 404 without asking again. */
const UNKNOWN_TTL_MS = 5000;
/** Environments per seeding call: about 250 bytes each, well under NATS's 1 MB message limit. */
const SEED_PAGE = 2000;

/** Answered while the registry is not seeded yet: the agent retries after its jittered delay. */
export class PollingNotReadyError extends AppError {
  constructor() {
    super('Edge check-ins are not served yet; retry shortly', 503, 'POLLING_NOT_READY', undefined, { retryable: true });
  }
}

/**
 * One polling replica's state and behaviour: its registry (seeded from `state.edgeEnvironments`,
 * kept current by change events), the check-in handler, the heartbeat flusher and tunnel flags.
 */
export class PollingRuntime {
  readonly registry = new EdgeRegistry();
  readonly flusher: HeartbeatFlusher;
  readonly checkins: CheckinHandler;
  readonly async: AsyncExchangeHandler;
  readonly push: PushTracker;
  private ready = false;
  /** Events that arrived while seeding; replayed after it (their revisions sort them out). */
  private backlog: Array<() => void> | null = [];
  private stopped = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Ids state did not know a moment ago, so a stream of check-ins for a bogus id costs one lookup. */
  private readonly unknown = new LRUCache<number, true>({ max: 10_000, ttl: UNKNOWN_TTL_MS });

  /**
   * An environment this replica does not know (created while it was starting, or an event lost):
   * asked of state once, remembered either way.
   */
  private async lookup(id: number): Promise<EdgeEnvironment | undefined> {
    if (!this.ready || this.unknown.has(id)) return undefined;
    const [env] = await call(this.broker, 'state.edgeEnvironments', { ids: [id] });
    if (!env) this.unknown.set(id, true);
    return env;
  }

  constructor(private readonly broker: ServiceBroker, readonly log: Logger) {
    this.flusher = new HeartbeatFlusher((items) => call(broker, 'state.recordCheckins', { items }), log);
    this.registry.onAgentGone = (id) => {
      this.flusher.forget(id);
      this.push.gone(id);
    };
    this.registry.onChanged = (id) => this.push.changed(id);
    this.push = new PushTracker({
      registry: this.registry,
      // Every gateway: each one pushes to the connections it holds.
      emit: (items) => broker.broadcast(PushEvents.replyChanged, { items }, { groups: ['gateway'] }),
      heartbeat: (id, at) => this.flusher.mark(id, at),
      now: unixNow,
      log,
    });
    this.checkins = new CheckinHandler({
      registry: this.registry,
      bind: (p) => call(broker, 'state.bindEdgeId', p),
      heartbeat: (id, at) => this.flusher.mark(id, at),
      now: unixNow,
      lookup: (id) => this.lookup(id),
      // One snapshots replica takes the first snapshot; none running is fine. Not before this
      // check-in's own reply is made (later in this turn): a snapshots service in this process
      // would otherwise make the environment REQUIRED first, and the agent's first reply differ.
      onBound: (id, asyncMode) => void setImmediate(() => void broker.emit(SnapshotEvents.agentBound, { id, asyncMode })
        .catch((err: Error) => log.warn({ id, err: err.message }, 'polling: agent-bound event not sent'))),
    });
    this.async = new AsyncExchangeHandler(broker, this.registry, this.checkins, log);
  }

  /** Seeds the registry, retrying with jittered backoff; resolves early (after SEED_WAIT_MS) if state is slow. */
  async start(): Promise<void> {
    this.flusher.start();
    this.push.start();
    const seeded = this.seedUntilDone();
    await Promise.race([seeded, new Promise((r) => setTimeout(r, SEED_WAIT_MS).unref())]);
    // Other nodes learn of this replica's event listeners only after `started` returns and
    // Moleculer's discovery has announced them (about a second later): changes committed in that
    // window are never delivered here. One more seeding once the announcement is out catches them,
    // and a periodic one bounds what any lost event could cost.
    const again = () => void this.seed().catch((err: Error) => this.log.warn({ err: err.message }, 'polling: re-seeding failed'));
    this.timers.push(setTimeout(again, RESEED_AFTER_START_MS), setInterval(again, RESEED_EVERY_MS));
    this.timers.forEach((t) => t.unref());
  }

  async stop(): Promise<void> {
    this.timers.forEach((t) => clearTimeout(t));
    this.stopped = true;
    this.push.stop();
    await this.flusher.stop();
  }

  private async seedUntilDone(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.seed();
        return;
      } catch (err) {
        const delay = Math.min(5000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.log.warn({ err: (err as Error).message, retryInMs: Math.round(delay) }, 'polling: seeding from state failed');
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  /** Reads every Edge environment and the settings from state (again after a leader change). */
  async seed(): Promise<void> {
    const since = this.registry.generation();
    const settings = await call(this.broker, 'state.getSettings', {});
    const list: EdgeEnvironment[] = [];
    for (let afterId = 0; ;) {
      const page = await call(this.broker, 'state.edgeEnvironments', { afterId, limit: SEED_PAGE });
      list.push(...page);
      if (page.length < SEED_PAGE) break;
      afterId = page[page.length - 1].Id;
    }
    this.registry.setSettings(settings);
    this.registry.reseed(list, since);
    this.push.changedAll();
    const backlog = this.backlog ?? [];
    this.backlog = null;
    backlog.forEach((apply) => apply());
    if (!this.ready) this.log.info({ environments: this.registry.size }, 'polling: serving edge check-ins');
    this.ready = true;
  }

  /** Runs now, or after seeding when it is still in progress. */
  private whenSeeded(apply: () => void): void {
    if (this.backlog) this.backlog.push(apply);
    else apply();
  }

  assertReady(): void {
    if (!this.ready) throw new PollingNotReadyError();
  }

  onEnvironmentChanged(e: EnvironmentChanged): void {
    this.whenSeeded(() => (e.edge ? this.registry.apply(e.edge) : this.registry.remove(e.id, e.rev)));
  }

  onSettingsChanged(s: SettingsChanged): void {
    this.whenSeeded(() => {
      this.registry.setSettings(s);
      this.push.changedAll();
    });
  }

  onTunnelChanged(t: TunnelChanged): void {
    this.whenSeeded(() => this.registry.setTunnel(t));
  }

  /**
   * `polling.setTunnel`: encrypts the credentials once for the bound Edge ID, applies the change
   * here, and broadcasts it so every polling replica answers the same bytes (and ETag).
   */
  async setTunnel(ctx: Context, p: SetTunnelParams): Promise<{ ok: boolean }> {
    this.assertReady();
    const entry = this.registry.get(p.id);
    if (!entry) throw new NotFoundError('Unable to find an Edge environment with the specified identifier', { id: p.id });
    let change: TunnelChanged = { id: p.id, status: 'IDLE', port: 0, credentials: '', edgeId: '', version: p.version };
    if (p.status === 'REQUIRED') {
      const edgeId = entry.env.EdgeID;
      if (entry.env.AsyncMode) throw new BadRequestError('An async environment never opens a tunnel', { id: p.id });
      if (!edgeId) throw new BadRequestError('The environment has no associated Edge agent yet', { id: p.id });
      if (!p.port || !p.credentials) throw new BadRequestError('A required tunnel needs a port and credentials', { id: p.id });
      change = { ...change, status: 'REQUIRED', port: p.port, credentials: encryptCredentials(p.credentials, edgeId), edgeId };
    }
    this.registry.setTunnel(change);
    await ctx.broadcast(EdgeEvents.tunnelChanged, change, { groups: ['polling'] });
    return { ok: true };
  }

  /**
   * `polling.pushOpen`: a gateway is about to accept a push connection. The agent is admitted
   * exactly like a check-in (and counts as one); a standard environment's current reply is its
   * first message. From now on this replica pushes the environment's reply changes.
   */
  async pushOpen(p: PushOpenParams): Promise<PushOpenResult> {
    this.assertReady();
    const node = this.broker.nodeID;
    const admitted = await this.checkins.admit(p);
    if ('status' in admitted) return { status: admitted.status as 400 | 403 | 404, node, error: admitted.error };
    const { entry } = admitted;
    this.push.open(entry);
    if (entry.env.AsyncMode) return { status: 200, node, async: true };
    const reply = this.registry.reply(entry);
    return { status: 200, node, etag: reply.etag, body: reply.json };
  }

  /** `polling.pushAlive`: heartbeats of pushed agents; the ids no longer admitted. */
  pushAlive(ids: number[]): PushAliveResult {
    this.assertReady();
    return { node: this.broker.nodeID, unknown: this.push.alive(ids) };
  }

  pushClosed(ids: number[]): { node: string } {
    this.push.closed(ids);
    return { node: this.broker.nodeID };
  }

  /** `polling.heartbeats`: the last check-in this replica knows for each id, and the effective interval. */
  heartbeats(ids: number[]): { items: Heartbeat[] } {
    const items: Heartbeat[] = [];
    for (const id of ids) {
      const e = this.registry.get(id);
      if (e) items.push({ id, lastCheckIn: e.heartbeat, checkinInterval: this.registry.interval(e) });
    }
    return { items };
  }
}
