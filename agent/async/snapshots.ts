import { compare } from 'fast-json-patch';
import { snapshotHash, type DockerSnapshot } from '../../shared/snapshot';
import type { SnapshotPayload } from './wire';

/** A snapshot ready to send, and the snapshot it describes (the next baseline once accepted). */
export interface PreparedSnapshot {
  payload: SnapshotPayload;
  snapshot: DockerSnapshot;
  full: boolean;
}

/**
 * The delta protocol of reference 2.5 on the agent's side: the first snapshot, and every one after
 * the server asked for it, goes whole; the others go as an RFC 6902 patch from the last snapshot
 * the server accepted, with that baseline's hash so the server can tell whether its copy matches.
 */
export class SnapshotDiffer {
  private baseline: DockerSnapshot | undefined;
  private full = true;

  constructor(private readonly take: () => Promise<DockerSnapshot>) {}

  /** Whether the next snapshot will be sent whole. */
  get nextIsFull(): boolean {
    return this.full || !this.baseline;
  }

  /** Takes a snapshot and encodes it against the baseline. */
  async prepare(): Promise<PreparedSnapshot> {
    const snapshot = await this.take();
    if (this.nextIsFull) return { payload: { docker: snapshot }, snapshot, full: true };
    const baseline = this.baseline!;
    return { payload: { dockerPatch: compare(baseline, snapshot), dockerHash: snapshotHash(baseline) }, snapshot, full: false };
  }

  /** The server took `snapshot` (a 200 that did not ask for a full one): patches start from it. */
  accept(snapshot: DockerSnapshot): void {
    this.baseline = snapshot;
    this.full = false;
  }

  /** The server asked for a full snapshot: the next one goes whole. */
  requireFull(): void {
    this.full = true;
  }
}
