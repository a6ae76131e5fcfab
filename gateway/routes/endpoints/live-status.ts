import type { ServiceBroker } from 'moleculer';
import { call, EnvironmentStatus, isEdgeType, isOnline, type Environment, type Heartbeat } from '../../../shared/contracts';

/** A list must not wait long for live heartbeats: without them it shows the stored ones. */
const HEARTBEATS_TIMEOUT_MS = 1000;
/** The most ids `polling.heartbeats` takes at once (the largest list page). */
const HEARTBEATS_PER_CALL = 1000;

const isStandardEdge = (e: Environment) => isEdgeType(e.Type) && !e.Edge.AsyncMode;

/**
 * Merges polling's live heartbeats into environments read from state, whose stored
 * `LastCheckInDate` lags by up to one heartbeat flush: LastCheckInDate = max(stored, live), and
 * Heartbeat/Status recomputed with Portainer's rule (up while now − last ≤ 2 × interval + 20 s).
 * One `polling.heartbeats` call for the whole page; if polling does not answer, the stored view stands.
 */
export async function withLiveHeartbeats(broker: ServiceBroker, envs: Environment[]): Promise<Environment[]> {
  const ids = envs.filter(isStandardEdge).map((e) => e.Id);
  if (!ids.length) return envs;
  let live: Heartbeat[];
  try {
    // One call for a page (at most 1000 environments); an unlimited list is asked in pages of that size.
    const chunks: number[][] = [];
    for (let i = 0; i < ids.length; i += HEARTBEATS_PER_CALL) chunks.push(ids.slice(i, i + HEARTBEATS_PER_CALL));
    const answers = await Promise.all(chunks.map((c) => call(broker, 'polling.heartbeats', { ids: c }, { timeout: HEARTBEATS_TIMEOUT_MS })));
    live = answers.flatMap((a) => a.items);
  } catch (err) {
    broker.logger.debug({ err: (err as Error).message }, 'live heartbeats unavailable; showing stored ones');
    return envs;
  }
  const byId = new Map(live.map((h) => [h.id, h]));
  const now = Math.floor(Date.now() / 1000);
  for (const e of envs) {
    const h = byId.get(e.Id);
    if (!h || h.lastCheckIn <= e.LastCheckInDate) continue;
    e.LastCheckInDate = h.lastCheckIn;
    e.Heartbeat = isOnline(h.lastCheckIn, h.checkinInterval, now);
    e.Status = e.Heartbeat ? EnvironmentStatus.Up : EnvironmentStatus.Down;
  }
  return envs;
}
