import { Type, type Static } from '@sinclair/typebox';
import { Id } from './common';
import type { SnapshotSummary } from './environments';

/*
 * Snapshots between services. A raw snapshot travels packed (gzip + base64, see
 * shared/snapshot packSnapshot) so a host with thousands of volumes stays one small message.
 */

/** Longest packed snapshot accepted in a call: base64 of gzip, below NATS's 1 MB payload. */
const Packed = Type.String({ minLength: 1, maxLength: 900_000 });

/** `state.putSnapshot`: the latest Docker snapshot of an environment (replaces the previous one). */
export const PutSnapshotParams = Type.Object({ id: Id, packed: Packed }, { additionalProperties: false });
export type PutSnapshotParams = Static<typeof PutSnapshotParams>;

/** `snapshots.take` / `snapshots.request`: snapshot an environment through its tunnel. */
export const SnapshotIdParams = Type.Object({ id: Id }, { additionalProperties: false });
export type SnapshotIdParams = Static<typeof SnapshotIdParams>;

/** Events of the snapshot flow. */
export const SnapshotEvents = {
  /** An agent was bound to an Edge environment (its first check-in): take a first snapshot. */
  agentBound: 'edge.agentBound',
} as const;

/** Payload of `edge.agentBound`. */
export const AgentBoundEvent = Type.Object({ id: Id, asyncMode: Type.Boolean() });
export type AgentBoundEvent = Static<typeof AgentBoundEvent>;

type A<P, R> = { params: P; result: R };
declare module './actions' {
  // Declaration merging keeps the snapshot actions in the one typed `call()` map.
  interface ActionMap {
    /** Stores the environment's latest snapshot (raw in the store, summary on the environment). */
    'state.putSnapshot': A<PutSnapshotParams, { Time: number }>;
    /** The latest snapshot, packed, or null when none was taken yet. */
    'state.getSnapshot': A<{ id: number }, { packed: string | null }>;
    /** Takes a snapshot through the environment's tunnel now (opening it if needed) and stores it. */
    'snapshots.take': A<SnapshotIdParams, SnapshotSummary>;
  }
}
