import { FENCE_KEY, MAX_KEY_BYTES, META_COLLECTION, type Key, type ScanRange, type WriteOp } from './types';

const COLLECTION_NAME = /^[a-z_][a-z0-9_]*$/;
// Both engines accept longer names, but a short cap keeps MongoDB namespaces and LMDB
// database names far from their limits whatever the database name is.
const MAX_COLLECTION_LENGTH = 64;

/** Throws unless `name` is a plain identifier usable as a collection on every adapter. */
export function assertCollection(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length > MAX_COLLECTION_LENGTH || !COLLECTION_NAME.test(name)) {
    throw new Error(`Invalid collection name ${JSON.stringify(name)}: expected [a-z_][a-z0-9_]* of at most ${MAX_COLLECTION_LENGTH} characters`);
  }
}

/** Throws unless `key` is a finite number or a non-empty string of at most MAX_KEY_BYTES bytes. */
export function assertKey(key: unknown): asserts key is Key {
  if (typeof key === 'number' && Number.isFinite(key)) return;
  if (typeof key === 'string' && key.length > 0 && Buffer.byteLength(key) <= MAX_KEY_BYTES) return;
  throw new Error(`Invalid key ${JSON.stringify(key)}: expected a finite number or a non-empty string of at most ${MAX_KEY_BYTES} bytes`);
}

/** Throws unless `value` is a plain object without `_id`. */
export function assertValue(value: unknown): asserts value is Record<string, unknown> {
  const proto = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new Error('Invalid value: expected a plain JSON object');
  }
  if (Object.hasOwn(value as object, '_id')) {
    throw new Error('Invalid value: the field "_id" is reserved for the key');
  }
}

/**
 * Validates a whole op list before anything is written, so a bad op never leaves the
 * engine half way through a transaction. Refuses writes to the fence: only claimFence moves it.
 */
export function assertOps(fence: unknown, ops: unknown): asserts ops is WriteOp[] {
  if (typeof fence !== 'number' || !Number.isSafeInteger(fence) || fence < 0) {
    throw new Error(`Invalid fence ${JSON.stringify(fence)}: expected a non-negative integer`);
  }
  if (!Array.isArray(ops)) throw new Error('Invalid ops: expected an array');
  ops.forEach((op: Partial<WriteOp> | null, i) => {
    if (!op || (op.op !== 'put' && op.op !== 'delete')) throw new Error(`Invalid op #${i}: expected op "put" or "delete"`);
    assertCollection(op.collection);
    assertKey(op.key);
    if (op.op === 'put') assertValue((op as { value?: unknown }).value);
    if (op.collection === META_COLLECTION && op.key === FENCE_KEY) {
      throw new Error(`Invalid op #${i}: ${META_COLLECTION}.${FENCE_KEY} is written only by claimFence`);
    }
  });
}

/**
 * Throws unless `range` is a valid {@link ScanRange}; returns the type of its bounds, or
 * undefined when it has none (every key is then in range).
 */
export function assertRange(range: ScanRange | undefined): 'number' | 'string' | undefined {
  if (range === undefined) return undefined;
  if (!range || typeof range !== 'object') throw new Error('Invalid scan range: expected an object');
  if (range.gte !== undefined && range.gt !== undefined) throw new Error('Invalid scan range: give gte or gt, not both');
  if (range.limit !== undefined && !(Number.isSafeInteger(range.limit) && range.limit > 0)) {
    throw new Error(`Invalid scan range: limit ${JSON.stringify(range.limit)} is not a positive integer`);
  }
  const bounds = [range.gte, range.gt, range.lt].filter((b) => b !== undefined);
  bounds.forEach((b) => assertKey(b));
  const types = new Set(bounds.map((b) => typeof b));
  if (types.size > 1) throw new Error('Invalid scan range: bounds must all be numbers or all be strings');
  return bounds.length ? (typeof bounds[0] as 'number' | 'string') : undefined;
}
