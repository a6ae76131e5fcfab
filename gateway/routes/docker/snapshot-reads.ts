import type { ServiceBroker } from 'moleculer';
import { call } from '../../../shared/contracts';
import { AppError } from '../../../shared/errors';
import { unpackSnapshot, type DockerSnapshot } from '../../../shared/snapshot';

/** No snapshot has arrived yet from the async agent. */
export class NoSnapshotError extends AppError {
  constructor(id: number) {
    super('No snapshot of this async environment has arrived yet', 503, 'NO_SNAPSHOT', { id }, { retryable: true });
  }
}

type Obj = Record<string, unknown>;
/** `all` as Docker reads it: 1/true means every container, else running ones only. */
const truthy = (v: string | null) => v !== null && v !== '0' && v.toLowerCase() !== 'false';

/** Docker read paths an async environment answers from its snapshot, with the API version prefix stripped. */
const READS: Record<string, (s: DockerSnapshot, q: URLSearchParams) => unknown> = {
  '/containers/json': (s, q) => (truthy(q.get('all')) ? s.DockerSnapshotRaw.Containers : (s.DockerSnapshotRaw.Containers as Obj[]).filter((c) => c.State === 'running')),
  '/images/json': (s) => s.DockerSnapshotRaw.Images,
  '/volumes': (s) => s.DockerSnapshotRaw.Volumes,
  '/networks': (s) => s.DockerSnapshotRaw.Networks,
  '/info': (s) => s.DockerSnapshotRaw.Info,
  '/version': (s) => s.DockerSnapshotRaw.Version,
};

/** The read `path` names (`/v1.41/containers/json` or `/containers/json`), or undefined when it is not served from snapshots. */
export function snapshotRead(path: string): ((s: DockerSnapshot, q: URLSearchParams) => unknown) | undefined {
  return READS[path.replace(/^\/v[0-9]+\.[0-9]+(?=\/)/, '').replace(/\/+$/, '')];
}

/**
 * Answers a Docker read of an async environment from its latest snapshot: the same JSON the
 * engine gave when the snapshot was taken, with `X-Capstan-Snapshot-Time` (unix seconds) saying
 * how old it is. Filters other than `all` are not applied.
 */
export async function readFromSnapshot(broker: ServiceBroker, id: number, path: string, query: string): Promise<{ body: unknown; time: number }> {
  const read = snapshotRead(path)!;
  const { packed } = await call(broker, 'state.getSnapshot', { id });
  if (!packed) throw new NoSnapshotError(id);
  const snapshot = unpackSnapshot(packed);
  return { body: read(snapshot, new URLSearchParams(query)), time: snapshot.Time };
}
