import { open, type Database, type RangeOptions, type RootDatabase } from 'lmdb';
import { FencedError } from '../errors';
import { FENCE_KEY, META_COLLECTION, type Key, type ScanRange, type Store, type WriteOp } from './types';
import { assertCollection, assertKey, assertOps, assertRange } from './validate';

/** Options of {@link LmdbStore}. */
export interface LmdbStoreOptions {
  /** Directory of the LMDB environment (created if missing); holds `data.mdb` and `lock.mdb`. */
  path: string;
}

type Value = Record<string, unknown>;
type Collection = Database<Value, Key>;

// Each collection is a named sub-database; the limit is a handle table size, not a file size.
const MAX_DBS = 64;
// Scans read pages of this many entries in one synchronous read transaction each, so no cursor
// or snapshot is held across the caller's awaits (a held snapshot stops LMDB reusing pages).
const SCAN_PAGE = 256;
// No value cache (a cache would hand out shared objects and hide other processes' writes) and no
// compression (values are small JSON documents).
const DB_OPTIONS = { cache: false, compression: false, encoding: 'msgpack' } as const;

/**
 * The embedded store: one LMDB environment (a directory), one named database per collection.
 *
 * Several processes may open the same directory at once (state replicas on one host do): LMDB's
 * write lock is shared between processes, and the fence check and the writes of a commit run in
 * one write transaction, so a deposed leader in another process cannot slip a write in.
 * Concurrent commits from this process are batched into one LMDB transaction (each in its own
 * child transaction, so one failing commit does not affect the others), and a commit is
 * acknowledged only once flushed to disk.
 */
export class LmdbStore implements Store {
  readonly kind = 'lmdb' as const;
  /** Where the data lives, for messages. */
  readonly location: string;
  private root: RootDatabase<Value, Key> | undefined;
  private readonly dbs = new Map<string, Collection>();

  constructor(private readonly options: LmdbStoreOptions) {
    this.location = options.path;
  }

  async open(): Promise<void> {
    if (this.root) return;
    // noSubdir: false because lmdb-js would otherwise treat a path with an extension
    // (main.lmdb) as a single file. overlappingSync is off: with it on, a process that opens the
    // store after another writer was SIGKILLed mid-commit hits MDB_PANIC on its first write,
    // which breaks state-replica failover on a shared data dir (reproduced with lmdb 3.5).
    this.root = open<Value, Key>({ path: this.options.path, noSubdir: false, maxDbs: MAX_DBS, overlappingSync: false, ...DB_OPTIONS });
    this.collection(META_COLLECTION);
  }

  async close(): Promise<void> {
    const root = this.root;
    if (!root) return;
    this.root = undefined;
    this.dbs.clear();
    await root.flushed;
    await root.close();
  }

  async get<T = Value>(collection: string, key: Key): Promise<T | undefined> {
    assertKey(key);
    const db = this.fresh(collection);
    return db.get(key) as T | undefined;
  }

  async *scan<T = Value>(collection: string, range?: ScanRange): AsyncIterable<{ key: Key; value: T }> {
    const type = assertRange(range);
    let remaining = range?.limit ?? Infinity;
    // Strings sort after every number: a string range without a lower bound starts at the
    // smallest non-empty string, and a number range stops at the first string.
    let start: Key | undefined = range?.gte ?? range?.gt ?? (type === 'string' ? '\u0000' : undefined);
    let exclusiveStart = range?.gt !== undefined;
    while (remaining > 0) {
      const db = this.fresh(collection);
      const opts: RangeOptions = { limit: Math.min(SCAN_PAGE, remaining) };
      if (start !== undefined) Object.assign(opts, { start, exclusiveStart });
      if (range?.lt !== undefined) opts.end = range.lt;
      const page = [...db.getRange(opts)];
      for (const { key, value } of page) {
        if (type && typeof key !== type) return;
        yield { key: key as Key, value: value as T };
      }
      remaining -= page.length;
      if (page.length < (opts.limit as number)) return;
      start = page[page.length - 1].key as Key;
      exclusiveStart = true;
    }
  }

  async count(collection: string): Promise<number> {
    return this.fresh(collection).getCount();
  }

  async readFence(): Promise<number> {
    return fenceOf(this.fresh(META_COLLECTION).get(FENCE_KEY));
  }

  async claimFence(): Promise<number> {
    const meta = this.collection(META_COLLECTION);
    const claimed = await meta.childTransaction(() => {
      const next = fenceOf(meta.get(FENCE_KEY)) + 1;
      meta.putSync(FENCE_KEY, { value: next });
      return next;
    });
    await this.durable();
    return claimed;
  }

  async commit(fence: number, ops: WriteOp[]): Promise<void> {
    assertOps(fence, ops);
    const meta = this.collection(META_COLLECTION);
    // Sub-databases are opened (and created) here, outside the write transaction: opening one
    // inside a child transaction that later aborts would leave a dangling handle.
    const targets = ops.map((op) => this.collection(op.collection));
    await meta.childTransaction(() => {
      // Read inside the write transaction: it holds LMDB's cross-process write lock, so the fence
      // cannot move between this check and the writes.
      const stored = fenceOf(meta.get(FENCE_KEY));
      if (stored !== fence) throw new FencedError(undefined, { fence, stored });
      ops.forEach((op, i) => {
        if (op.op === 'put') targets[i].putSync(op.key, op.value);
        else targets[i].removeSync(op.key);
      });
    });
    await this.durable();
  }

  /** The collection's database, with the read snapshot renewed so other processes' commits show. */
  private fresh(collection: string): Collection {
    const db = this.collection(collection);
    // lmdb-js reuses one read transaction until the next macrotask; a read right after another
    // process committed (in the same tick) would otherwise see the older snapshot.
    this.root?.resetReadTxn();
    return db;
  }

  private collection(name: string): Collection {
    assertCollection(name);
    if (!this.root) throw new Error(`LMDB store at ${this.location} is not open`);
    let db = this.dbs.get(name);
    if (!db) {
      db = this.root.openDB<Value, Key>(name, DB_OPTIONS);
      this.dbs.set(name, db);
    }
    return db;
  }

  // An acknowledged commit must survive a power loss: wait until lmdb-js reports it flushed.
  private async durable(): Promise<void> {
    await this.root?.flushed;
  }
}

function fenceOf(doc: Value | undefined): number {
  const value = doc?.value;
  return typeof value === 'number' ? value : 0;
}
