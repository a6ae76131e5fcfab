import type { Operation } from 'fast-json-patch';
import type { DockerSnapshot } from '../../shared/snapshot';

/*
 * The async-mode exchange (reference 2.2, 2.3) as the agent writes and reads it: Portainer's
 * fields, plus the `capstan` extension (per-environment command sequence numbers and acks) that a
 * Portainer server ignores like any unknown JSON field.
 */

/** The path every async exchange goes to, under the key's API URL. */
export const ASYNC_PATH = '/api/endpoints/edge/async';

/** The watermark a fresh agent sends (reference 2.6). */
export const INITIAL_COMMAND_TIMESTAMP = '2000-01-01T00:00:00Z';

/** The snapshot part of a request: a full snapshot, or a JSON patch from the previous baseline. */
export type SnapshotPayload =
  | { docker: DockerSnapshot }
  | { dockerPatch: Operation[]; dockerHash: number };

/** The outcome of one sequenced command, as reported to a Capstan server. */
export interface CommandAck {
  seq: number;
  status: 'succeeded' | 'failed';
  /** Why it failed: Docker's `message`, or the agent's own reason (not run, unsupported, …). */
  error?: string;
  /** What the command answered (`dockerRequest` only): status code and body, truncated. */
  result?: unknown;
  /** Unix seconds. */
  finishedAt: number;
}

/** Capstan's extension in every request body. */
export interface CapstanRequestExtension {
  /** The highest sequence number this agent has handled (run, failed, skipped or interrupted). */
  seq: number;
  /** Outcomes not yet confirmed by a 200 reply; the same ack may arrive more than once. */
  acks: CommandAck[];
}

/** `POST /api/endpoints/edge/async` body (before gzip). */
export interface AsyncRequestBody {
  /** Omitted while unknown (a global key before the server answered). */
  endpointId?: number;
  /** RFC 3339; only when the command timer fired. */
  commandTimestamp?: string;
  /** Only when the snapshot timer fired. */
  snapshot?: SnapshotPayload;
  capstan: CapstanRequestExtension;
}

/** One command of a reply (reference 2.6), with Capstan's sequencing fields when the server is Capstan. */
export interface AsyncCommand {
  id: number;
  type: string;
  endpointID: number;
  timestamp: string;
  op?: string;
  path?: string;
  value?: unknown;
  /** Capstan: per-environment sequence number, ≥ 1. */
  seq?: number;
  /** Capstan: skip this command when the one before it did not succeed. */
  stopOnFailure?: boolean;
}

/** The reply to an async exchange. Intervals are Go durations: nanoseconds. */
export interface AsyncResponse {
  pingInterval?: number;
  snapshotInterval?: number;
  commandInterval?: number;
  endpointID?: number;
  commands?: AsyncCommand[] | null;
  needFullSnapshot?: boolean;
  /** Capstan: more commands are queued than this reply carried; ask again at once. */
  capstan?: { more?: boolean };
}
