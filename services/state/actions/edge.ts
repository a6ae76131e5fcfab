import type { Context } from 'moleculer';
import {
  EdgeEvents, EnvironmentType, settingsAsyncIntervals,
  type BindEdgeIdParams, type EdgeEnvironment, type EdgeEnvironmentsParams, type Environment, type EnvironmentChanged, type RecordCheckinsParams, type Revision, type Settings, type SettingsChanged,
} from '../../../shared/contracts';
import { BadRequestError, ForbiddenError, NotFoundError } from '../../../shared/errors';
import type { WriteOp } from '../../../shared/store';
import { CHECKINS, lastCheckIn, now, type Leading, type StoredEnvironment } from './context';
import { getEnvironment } from './environments';

/*
 * Edge agent state: the compact view polling keeps in memory, the Edge ID binding written at the
 * first check-in, batched heartbeats, re-pairing, and the change events that keep every polling
 * replica's memory in step with the store.
 */

const isEdgeType = (t: number) => t === EnvironmentType.EdgeAgentOnDocker || t === EnvironmentType.EdgeAgentOnKubernetes;
const notFound = (id: number) => new NotFoundError('Unable to find an environment with the specified identifier', { id });
/** A check-in more than this far in the future is a clock problem, not a heartbeat. */
const MAX_CLOCK_SKEW_S = 300;

let seq = 0;
/** A revision newer than every one this process handed out before (fence first, then a counter). */
function nextRev(l: Leading): Revision {
  return { fence: l.repo.fence, seq: ++seq };
}

/** The compact view of an Edge environment, stamped with a fresh revision. */
export function compactOf(l: Leading, e: Readonly<StoredEnvironment>): EdgeEnvironment {
  return {
    Id: e.Id, EdgeID: e.EdgeID, Type: e.Type, EdgeCheckinInterval: e.EdgeCheckinInterval, AsyncMode: e.Edge.AsyncMode,
    AsyncIntervals: { Ping: e.Edge.PingInterval, Snapshot: e.Edge.SnapshotInterval, Command: e.Edge.CommandInterval },
    UserTrusted: e.UserTrusted, LastCheckInDate: lastCheckIn(l.repo, e.Id), AgentVersion: e.Agent.Version, Rev: nextRev(l),
  };
}

/** The write that makes `at` the last check-in of environment `id`. */
const checkinOp = (id: number, at: number): WriteOp => ({ op: 'put', collection: CHECKINS, key: id, value: { at } });

/**
 * Edge environments (types 4 and 7) for polling to seed its memory: those of `ids`, or a page of
 * all of them in id order (`afterId`, `limit`), so no answer outgrows a transporter message.
 */
export function edgeEnvironments(l: Leading, p: EdgeEnvironmentsParams): EdgeEnvironment[] {
  if (p.ids) {
    const out: EdgeEnvironment[] = [];
    for (const id of p.ids) {
      const e = l.repo.peek<StoredEnvironment>('environments', id);
      if (e && isEdgeType(e.Type)) out.push(compactOf(l, e));
    }
    return out;
  }
  const after = p.afterId ?? 0;
  const page: StoredEnvironment[] = [];
  for (const e of l.repo.values<StoredEnvironment>('environments')) if (e.Id > after && isEdgeType(e.Type)) page.push(e);
  page.sort((x, y) => x.Id - y.Id);
  return page.slice(0, p.limit ?? page.length).map((e) => compactOf(l, e));
}

/**
 * A check-in's writes: binds the Edge ID when none is bound (another one bound: 403), records
 * the agent version and the platform's environment type. Writes (once) only when something
 * changed, so an agent polling again with the same headers costs no write.
 */
export async function bindEdgeId(l: Leading, p: BindEdgeIdParams): Promise<{ environment: EdgeEnvironment; written: boolean }> {
  return l.repo.withLock([`environments:${p.id}`], async () => {
    const cur = l.repo.get<StoredEnvironment>('environments', p.id);
    if (!cur) throw notFound(p.id);
    if (!isEdgeType(cur.Type)) throw new ForbiddenError('Permission denied to access environment', 'Invalid environment type');
    if (cur.EdgeID && cur.EdgeID !== p.edgeId) throw new ForbiddenError('Permission denied to access environment', 'invalid Edge identifier');
    const type = p.platform === 2 ? EnvironmentType.EdgeAgentOnKubernetes : EnvironmentType.EdgeAgentOnDocker;
    const becomesAsync = !!p.async && !cur.Edge.AsyncMode;
    const written = !cur.EdgeID || cur.Agent.Version !== p.agentVersion || cur.Type !== type || becomesAsync;
    if (!written) return { environment: compactOf(l, cur), written };
    const next: StoredEnvironment = {
      ...cur, EdgeID: cur.EdgeID || p.edgeId, Type: type, Agent: { ...cur.Agent, Version: p.agentVersion },
      Edge: becomesAsync ? { ...cur.Edge, AsyncMode: true } : cur.Edge,
    };
    // The write happens anyway: persist this check-in with it.
    await l.repo.commit([
      { op: 'put', collection: 'environments', key: p.id, value: next },
      checkinOp(p.id, Math.max(lastCheckIn(l.repo, p.id), now())),
    ]);
    return { environment: compactOf(l, next), written };
  });
}

/**
 * Persists a batch of last check-ins in one commit of `{ at }` documents, one per environment;
 * unknown, non-Edge and older entries are skipped. The environment documents are only looked at.
 */
export async function recordCheckins(l: Leading, p: RecordCheckinsParams): Promise<{ updated: number }> {
  const latest = new Map<number, number>();
  for (const { id, at } of p.items) latest.set(id, Math.max(latest.get(id) ?? 0, at));
  const horizon = now() + MAX_CLOCK_SKEW_S;
  // Locks: a concurrent delete or re-pairing of the same environment must not be undone by this batch.
  return l.repo.withLock([...latest.keys()].map((id) => `environments:${id}`), async () => {
    const ops: WriteOp[] = [];
    for (const [id, at] of latest) {
      const cur = l.repo.peek<StoredEnvironment>('environments', id);
      if (!cur || !isEdgeType(cur.Type) || at <= lastCheckIn(l.repo, id) || at > horizon) continue;
      ops.push(checkinOp(id, at));
    }
    if (ops.length) await l.repo.commit(ops);
    return { updated: ops.length };
  });
}

/** Forgets the agent of an Edge environment (`DELETE /api/endpoints/{id}/association`) so another can bind. */
export async function clearAssociation(l: Leading, id: number): Promise<Environment> {
  await l.repo.withLock([`environments:${id}`], async () => {
    const cur = l.repo.get<StoredEnvironment>('environments', id);
    if (!cur) throw notFound(id);
    if (!isEdgeType(cur.Type)) throw new BadRequestError('Invalid environment type', { id, Type: cur.Type });
    const next: StoredEnvironment = { ...cur, EdgeID: '', Snapshots: [] };
    await l.repo.commit([
      { op: 'put', collection: 'environments', key: id, value: next },
      { op: 'delete', collection: 'snapshots', key: id },
      { op: 'delete', collection: CHECKINS, key: id },
    ]);
  });
  return getEnvironment(l, id);
}

/** Which environment (or the settings) a successful state action changed. */
const CHANGES: Record<string, (p: any, out: any) => number | 'settings' | undefined> = {
  createEnvironment: (_p, out: Environment) => out.Id,
  updateEnvironment: (p: { id: number }) => p.id,
  deleteEnvironment: (p: { id: number }) => p.id,
  bindEdgeId: (p: { id: number }, out: { written: boolean }) => (out.written ? p.id : undefined),
  clearAssociation: (p: { id: number }) => p.id,
  updateSettings: () => 'settings',
};

/**
 * After a state action succeeded on the leader: broadcasts `environment.changed` (with the
 * compact view read now, so later broadcasts always carry newer revisions) or `settings.changed`.
 * Never fails the action: the write is done; a lost event is logged.
 */
export async function announceChange(ctx: Context, l: Leading, action: string, params: unknown, out: unknown): Promise<void> {
  const changed = CHANGES[action]?.(params, out);
  if (changed === undefined) return;
  try {
    if (changed === 'settings') {
      const s = l.repo.get<Settings>('settings', 'settings')!;
      const payload: SettingsChanged = { EdgeAgentCheckinInterval: s.EdgeAgentCheckinInterval, TrustOnFirstConnect: s.TrustOnFirstConnect, Async: settingsAsyncIntervals(s) };
      await ctx.broadcast(EdgeEvents.settingsChanged, payload);
      return;
    }
    const e = l.repo.peek<StoredEnvironment>('environments', changed);
    const edge = e && isEdgeType(e.Type) ? compactOf(l, e) : null;
    const payload: EnvironmentChanged = { id: changed, rev: edge?.Rev ?? nextRev(l), edge };
    await ctx.broadcast(EdgeEvents.environmentChanged, payload);
  } catch (err) {
    ctx.service?.logger.warn({ err, action }, 'change event not delivered');
  }
}
