/**
 * The store contract shared by every adapter (LMDB embedded, MongoDB).
 *
 * State is a set of named collections of JSON objects addressed by a key. Every write goes through
 * {@link Store.commit}, which is atomic and guarded by a fencing token, so a deposed `state` leader
 * can never overwrite what its successor wrote.
 */

/**
 * A record key. Numbers and strings keep their type (`1` and `'1'` are different keys).
 * Scans return numbers first (ascending), then strings (ascending by UTF-8 bytes).
 * Strings must be non-empty and at most {@link MAX_KEY_BYTES} bytes; numbers must be finite.
 */
export type Key = string | number;

/**
 * One write inside a {@link Store.commit}. `value` must be a JSON-compatible plain object without
 * an `_id` field (the MongoDB adapter uses `_id` for the key).
 */
/**
 * Bounds of a {@link Store.scan}. All bounds of one range have the same type (number or string),
 * and a bounded range holds only keys of that type: `{ gte: 'a' }` never yields a number key,
 * `{ lt: 10 }` never yields a string key. `gte` and `gt` are exclusive of each other. Without
 * bounds every key is in range. `limit` caps the number of entries yielded.
 */
export interface ScanRange {
  /** Keys greater than or equal to this one. */
  gte?: Key;
  /** Keys strictly greater than this one (a paging cursor: the last key seen). */
  gt?: Key;
  /** Keys strictly less than this one. */
  lt?: Key;
  /** At most this many entries (a positive integer). */
  limit?: number;
}

export type WriteOp =
  | { op: 'put'; collection: string; key: Key; value: Record<string, unknown> }
  | { op: 'delete'; collection: string; key: Key };

/**
 * A transactional key-value store of collections.
 *
 * Collection names are plain identifiers (`[a-z_][a-z0-9_]*`, at most 64 characters); any other
 * name is rejected with an Error. The reserved collection {@link META_COLLECTION} holds the fence
 * and the schema version; commits may write its other keys but never {@link FENCE_KEY}.
 */
export interface Store {
  readonly kind: 'lmdb' | 'mongodb';
  /** Connects, creating the store if missing. Calling it again while open does nothing. */
  open(): Promise<void>;
  /** Waits for acknowledged writes, then releases files and connections. */
  close(): Promise<void>;
  /** A fresh copy of the value (the caller may mutate it), or undefined when the key is absent. */
  get<T = Record<string, unknown>>(collection: string, key: Key): Promise<T | undefined>;
  /**
   * Every entry in key order, or those in `range`. Not a point-in-time snapshot: it pages through
   * the live data. An invalid range (mixed bound types, both `gte` and `gt`, a bad limit) throws.
   */
  scan<T = Record<string, unknown>>(collection: string, range?: ScanRange): AsyncIterable<{ key: Key; value: T }>;
  count(collection: string): Promise<number>;
  /** The current fencing token; 0 when never claimed. */
  readFence(): Promise<number>;
  /** Atomically reads the fence f, stores f+1 and returns f+1. A new leader calls this once; it is its fencing token. */
  claimFence(): Promise<number>;
  /** Atomically: if the stored fence !== fence throw FencedError (nothing written); else apply all ops (all or nothing). */
  commit(fence: number, ops: WriteOp[]): Promise<void>;
}

/** Reserved collection for store metadata. */
export const META_COLLECTION = '_meta';
/** `_meta` key of the fencing token, stored as `{ value: number }`; only `claimFence` writes it. */
export const FENCE_KEY = 'fence';
/** `_meta` key of the schema version, stored as `{ value: number }`. */
export const SCHEMA_VERSION_KEY = 'schemaVersion';
/** Longest string key, in UTF-8 bytes: well under LMDB's key limit once encoded. */
export const MAX_KEY_BYTES = 500;
