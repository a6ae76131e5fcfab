import type { BindEdgeIdParams, CarriedError, CheckinBatchResult, CheckinParams, CheckinResult, EdgeEnvironment } from '../../shared/contracts';
import { AppError } from '../../shared/errors';
import { edgeTypeOfPlatform, ifNoneMatchHits } from '../../shared/protocol';
import type { EdgeRegistry, Entry } from './registry';

/** What a check-in needs besides memory: the one write path (binding) and the heartbeat sink. */
export interface CheckinDeps {
  registry: EdgeRegistry;
  /** `state.bindEdgeId`; rejects with a 403/404 AppError when state refuses. */
  bind(p: BindEdgeIdParams): Promise<{ environment: EdgeEnvironment }>;
  heartbeat(id: number, at: number): void;
  now(): number;
  /** State's view of an environment this replica does not know, if state knows it. */
  lookup?(id: number): Promise<EdgeEnvironment | undefined>;
  /** An agent was bound to an environment that had none (its first check-in). */
  onBound?(id: number, asyncMode: boolean): void;
}

const DENIED = 'Permission denied to access environment';
const fail = (status: 400 | 403 | 404, message: string, details: string): CheckinResult => ({ status, error: { message, details } });

/**
 * Answers `GET /api/endpoints/{id}/edge/status` the way Portainer does (reference 1.7), from
 * memory. Unlike Portainer, the Edge ID is checked before the ETag shortcut, so a 304 never
 * refreshes the heartbeat of an agent that is not the bound one.
 */
export class CheckinHandler {
  /** Bindings in flight, so a burst of first check-ins makes one call to state. */
  private readonly binding = new Map<string, Promise<void>>();

  constructor(private readonly deps: CheckinDeps) {}

  async checkin(p: CheckinParams): Promise<CheckinResult> {
    const admitted = await this.admit(p);
    if ('status' in admitted) return admitted;
    const reply = this.deps.registry.reply(admitted.entry);
    if (ifNoneMatchHits(p.ifNoneMatch, reply.etag)) return { status: 304, etag: reply.etag };
    return { status: 200, etag: reply.etag, body: reply.json };
  }

  /**
   * `polling.checkinBatch`: each item answered exactly as `checkin` answers it, its error carried
   * in its place. Items answered from memory settle within microtasks; one that still waits on
   * state one event-loop turn later (a first binding, an unknown id) comes back `pending` and
   * keeps running here, so it holds up no other item; the gateway asks again for those (`wait`)
   * and they join the bindings already in flight.
   */
  async batch(items: CheckinParams[], carry: (err: Error) => CarriedError, wait = false): Promise<CheckinBatchResult['items']> {
    const out: CheckinBatchResult['items'] = new Array(items.length);
    const fail = (i: number) => (err: unknown) => {
      out[i] = { failed: carry(err instanceof Error ? err : new Error(String(err))) };
    };
    const running = items.map((p, i) => this.checkin(p).then((r) => void (out[i] = r), fail(i)));
    await (wait ? Promise.all(running) : new Promise((r) => setImmediate(r)));
    // A copy: the pending ones still write into `out` when they finish.
    return Array.from(out, (r) => r ?? { pending: true as const });
  }

  /**
   * The checks every agent request passes (standard check-in and async exchange alike): known
   * environment, the bound Edge ID (binding it on first contact), a valid platform, trust; then
   * the heartbeat. `async` marks the environment async when its agent uses the async exchange.
   */
  async admit(p: Omit<CheckinParams, 'ifNoneMatch'> & { async?: boolean }): Promise<{ entry: Entry } | CheckinResult> {
    const { registry } = this.deps;
    let entry = registry.get(p.id);
    if (!entry) {
      const env = await this.deps.lookup?.(p.id);
      if (env) registry.apply(env);
      entry = registry.get(p.id);
    }
    if (!entry) return fail(404, 'Unable to find an environment with the specified identifier inside the database', 'environment not found');
    const edgeId = p.edgeId?.trim() ?? '';
    if (!edgeId) return fail(403, DENIED, 'missing Edge identifier');
    if (entry.env.EdgeID && entry.env.EdgeID !== edgeId) return fail(403, DENIED, 'invalid Edge identifier');
    const type = edgeTypeOfPlatform(p.platform);
    if (type === undefined) return fail(400, 'agent platform header is not valid', p.platform ? `agent platform ${p.platform} is not valid` : 'agent platform header is missing');
    if (!entry.env.UserTrusted && !registry.settings.TrustOnFirstConnect) return fail(403, DENIED, 'the device has not been trusted yet');

    const agentVersion = p.agentVersion ?? '';
    const becomesAsync = !!p.async && !entry.env.AsyncMode;
    if (!entry.env.EdgeID || entry.env.AgentVersion !== agentVersion || entry.env.Type !== type || becomesAsync) {
      const refused = await this.bind(entry, edgeId, agentVersion, type === 7 ? 2 : 1, becomesAsync);
      if (refused) return refused;
      entry = registry.get(p.id);
      if (!entry) return fail(404, 'Unable to find an environment with the specified identifier inside the database', 'environment not found');
    }

    const at = this.deps.now();
    entry.heartbeat = Math.max(entry.heartbeat, at);
    this.deps.heartbeat(entry.env.Id, at);
    return { entry };
  }

  /** The first check-in (or a new agent version/platform): the only write on this path. */
  private async bind(entry: Entry, edgeId: string, agentVersion: string, platform: 1 | 2, async: boolean): Promise<CheckinResult | undefined> {
    const key = `${entry.env.Id}\n${edgeId}\n${agentVersion}\n${platform}\n${async}`;
    let pending = this.binding.get(key);
    if (!pending) {
      const first = !entry.env.EdgeID;
      pending = this.deps.bind({ id: entry.env.Id, edgeId, agentVersion, platform, ...(async ? { async } : {}) })
        .then(({ environment }) => {
          this.deps.registry.apply(environment);
          if (first && environment.EdgeID === edgeId) this.deps.onBound?.(environment.Id, environment.AsyncMode);
        })
        .finally(() => this.binding.delete(key));
      this.binding.set(key, pending);
    }
    try {
      await pending;
      return undefined;
    } catch (err) {
      // State is the arbiter: another agent won the binding, or the environment is gone.
      if (err instanceof AppError && err.code === 403) return fail(403, DENIED, String(err.data ?? 'invalid Edge identifier'));
      if (err instanceof AppError && err.code === 404) return fail(404, 'Unable to find an environment with the specified identifier inside the database', 'environment not found');
      throw err;
    }
  }
}
