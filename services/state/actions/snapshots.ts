import type { PutSnapshotParams, SnapshotSummary } from '../../../shared/contracts';
import { BadRequestError, NotFoundError } from '../../../shared/errors';
import { packSnapshot, summarizeSnapshot, unpackSnapshot, type DockerSnapshot } from '../../../shared/snapshot';
import type { Leading, StoredEnvironment } from './context';

/*
 * Snapshots (reference 5.2, 2.7): one record per environment in `snapshots`, overwritten each
 * time, holding the full Docker snapshot with its raw payloads; the environment document carries
 * the summary only (`Snapshots: [summary]`), so lists stay small (field notes #8188). The raw
 * records are read from the store when asked for, never kept in the leader's memory.
 */

export const SNAPSHOTS = 'snapshots';

/** What the `snapshots` collection holds per environment (Portainer's `{EndpointId, Docker, Kubernetes}`). */
export interface SnapshotRecord {
  EndpointId: number;
  Docker: DockerSnapshot | null;
  Kubernetes: null;
}

export async function putSnapshot(l: Leading, p: PutSnapshotParams): Promise<{ Time: number }> {
  let docker: DockerSnapshot;
  try {
    docker = unpackSnapshot(p.packed);
  } catch (err) {
    throw new BadRequestError('The snapshot is not a valid packed Docker snapshot', (err as Error).message);
  }
  if (typeof docker.Time !== 'number' || !docker.DockerSnapshotRaw || typeof docker.DockerSnapshotRaw !== 'object') {
    throw new BadRequestError('The snapshot lacks its Time or its raw section', { id: p.id });
  }
  return l.repo.withLock([`environments:${p.id}`], async () => {
    const cur = l.repo.get<StoredEnvironment>('environments', p.id);
    if (!cur) throw new NotFoundError('Unable to find an environment with the specified identifier', { id: p.id });
    const summary = summarizeSnapshot(docker) as SnapshotSummary;
    const record: SnapshotRecord = { EndpointId: p.id, Docker: docker, Kubernetes: null };
    await l.repo.commit([
      { op: 'put', collection: SNAPSHOTS, key: p.id, value: record as unknown as Record<string, unknown> },
      { op: 'put', collection: 'environments', key: p.id, value: { ...cur, Snapshots: [summary] } },
    ]);
    return { Time: docker.Time };
  });
}

export async function getSnapshot(l: Leading, id: number): Promise<{ packed: string | null }> {
  if (!l.repo.get('environments', id)) throw new NotFoundError('Unable to find an environment with the specified identifier', { id });
  const record = await l.main.get<SnapshotRecord>(SNAPSHOTS, id);
  return { packed: record?.Docker ? packSnapshot(record.Docker) : null };
}
