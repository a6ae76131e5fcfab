import { MongoClient, MongoServerError, type AnyBulkWriteOperation, type Collection, type Db, type Filter, type TransactionOptions } from 'mongodb';
import { FencedError } from '../errors';
import { FENCE_KEY, META_COLLECTION, type Key, type ScanRange, type Store, type WriteOp } from './types';
import { assertCollection, assertKey, assertOps, assertRange } from './validate';

/** Options of {@link MongoStore}. */
export interface MongoStoreOptions {
  /** Connection string. May hold credentials: it never appears in messages. */
  url: string;
  /** Database holding this store's collections. */
  database: string;
}

interface StoredDoc {
  _id: Key;
  [field: string]: unknown;
}
/** `_meta.fence`: `value` is the token; `commits` is bumped by every commit (see commit()). */
interface FenceDoc {
  _id: typeof FENCE_KEY;
  value?: number;
  commits?: number;
}

// Majority write concern: an acknowledged commit survives a primary failover.
const TXN_OPTIONS: TransactionOptions = {
  readPreference: 'primary',
  readConcern: { level: 'snapshot' },
  writeConcern: { w: 'majority' },
};
// Server error 20 (IllegalOperation) is what a standalone mongod answers to a transaction.
const ILLEGAL_OPERATION = 20;
const NAMESPACE_EXISTS = 48;

/**
 * The MongoDB store: one collection per store collection, documents `{ _id: key, ...value }`.
 *
 * Requires a replica set or a sharded cluster (a single-node replica set is enough), because
 * {@link MongoStore.commit} is a multi-document transaction; {@link MongoStore.open} refuses a
 * standalone server with a message saying so.
 */
export class MongoStore implements Store {
  readonly kind = 'mongodb' as const;
  /** Where the data lives, for messages (the database name; the URL may hold credentials). */
  readonly location: string;
  private client: MongoClient | undefined;
  private db: Db | undefined;
  private opening: Promise<void> | undefined;
  private readonly known = new Set<string>();

  constructor(private readonly options: MongoStoreOptions) {
    this.location = `MongoDB database ${options.database}`;
  }

  async open(): Promise<void> {
    // Shared promise: two concurrent open() calls must not create two clients.
    this.opening ??= this.connect().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  async close(): Promise<void> {
    // Let an open() in flight finish first, so the client it creates is the one closed here.
    const opening = this.opening;
    this.opening = undefined;
    await opening?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    this.db = undefined;
    this.known.clear();
    await client?.close();
  }

  private async connect(): Promise<void> {
    const client = new MongoClient(this.options.url);
    try {
      await client.connect();
      const hello = await client.db('admin').command({ hello: 1 });
      if (!hello.setName && hello.msg !== 'isdbgrid') throw this.needsReplicaSet();
      const db = client.db(this.options.database);
      for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) this.known.add(name);
      [this.client, this.db] = [client, db];
      await this.ensureCollection(META_COLLECTION);
    } catch (err) {
      this.client = undefined;
      this.db = undefined;
      this.known.clear();
      await client.close();
      throw err;
    }
  }

  async get<T = Record<string, unknown>>(collection: string, key: Key): Promise<T | undefined> {
    assertKey(key);
    const doc = await this.collection(collection).findOne({ _id: key });
    return doc ? (strip(doc) as T) : undefined;
  }

  async *scan<T = Record<string, unknown>>(collection: string, range?: ScanRange): AsyncIterable<{ key: Key; value: T }> {
    assertRange(range);
    // MongoDB compares a bound only with values of its own type ("type bracketing"), which is
    // exactly the contract: a bounded range holds only keys of its bounds' type.
    const bounds: Record<string, Key> = {};
    if (range?.gte !== undefined) bounds.$gte = range.gte;
    if (range?.gt !== undefined) bounds.$gt = range.gt;
    if (range?.lt !== undefined) bounds.$lt = range.lt;
    const filter = Object.keys(bounds).length ? { _id: bounds } : {};
    // _id order matches LMDB's: numbers ascending, then strings by UTF-8 bytes (simple collation).
    const cursor = this.collection(collection).find(filter as Filter<StoredDoc>, { sort: { _id: 1 }, ...(range?.limit ? { limit: range.limit } : {}) });
    for await (const doc of cursor) {
      yield { key: doc._id, value: strip(doc) as T };
    }
  }

  async count(collection: string): Promise<number> {
    // countDocuments, not the collection metadata estimate, which can drift after an unclean shutdown.
    return this.collection(collection).countDocuments({});
  }

  async readFence(): Promise<number> {
    return fenceOf(await this.fenceDocs().findOne({ _id: FENCE_KEY }));
  }

  async claimFence(): Promise<number> {
    // A single-document update is atomic on its own; no transaction needed to read-increment-return.
    const doc = await this.fenceDocs().findOneAndUpdate(
      { _id: FENCE_KEY },
      { $inc: { value: 1 } },
      { upsert: true, returnDocument: 'after', writeConcern: { w: 'majority' } },
    );
    return fenceOf(doc);
  }

  async commit(fence: number, ops: WriteOp[]): Promise<void> {
    assertOps(fence, ops);
    const meta = this.fenceDocs();
    // Create collections before the transaction: implicit creation inside one is refused by
    // older servers and by sharded clusters.
    for (const name of new Set(ops.map((op) => op.collection))) await this.ensureCollection(name);
    const session = this.connected().client.startSession();
    try {
      await session.withTransaction(async () => {
        // A write, not a read, of the fence document: under snapshot isolation only a write
        // conflicts with a concurrent claimFence, which makes one of the two retry or fail.
        const doc = await meta.findOneAndUpdate({ _id: FENCE_KEY }, { $inc: { commits: 1 } }, { upsert: true, returnDocument: 'after', session });
        const stored = fenceOf(doc);
        if (stored !== fence) throw new FencedError(undefined, { fence, stored });
        for (const run of runsByCollection(ops)) {
          await this.collection(run.collection).bulkWrite(run.models, { ordered: true, session });
        }
      }, TXN_OPTIONS);
    } catch (err) {
      if (err instanceof MongoServerError && err.code === ILLEGAL_OPERATION && /transaction/i.test(err.message)) throw this.needsReplicaSet(err);
      throw err;
    } finally {
      await session.endSession();
    }
  }

  private connected(): { client: MongoClient; db: Db } {
    if (!this.client || !this.db) throw new Error(`${this.location} store is not open`);
    return { client: this.client, db: this.db };
  }

  private collection(name: string): Collection<StoredDoc> {
    assertCollection(name);
    return this.connected().db.collection<StoredDoc>(name);
  }

  private fenceDocs(): Collection<FenceDoc> {
    return this.connected().db.collection<FenceDoc>(META_COLLECTION);
  }

  private async ensureCollection(name: string): Promise<void> {
    if (this.known.has(name)) return;
    try {
      await this.connected().db.createCollection(name);
    } catch (err) {
      // Another replica may have created it in the meantime.
      if (!(err instanceof MongoServerError && err.code === NAMESPACE_EXISTS)) throw err;
    }
    this.known.add(name);
  }

  private needsReplicaSet(cause?: unknown): Error {
    return new Error(
      `${this.location}: the MongoDB store needs transactions, which require a replica set or a sharded cluster; ` +
        'this server is standalone. A single-node replica set is enough (start mongod with --replSet rs0, then run rs.initiate()).',
      { cause },
    );
  }
}

/** Splits ops into runs of consecutive ops on one collection, keeping their order. */
function runsByCollection(ops: WriteOp[]): { collection: string; models: AnyBulkWriteOperation<StoredDoc>[] }[] {
  const runs: { collection: string; models: AnyBulkWriteOperation<StoredDoc>[] }[] = [];
  for (const op of ops) {
    let run = runs[runs.length - 1];
    if (!run || run.collection !== op.collection) runs.push((run = { collection: op.collection, models: [] }));
    run.models.push(
      op.op === 'put'
        ? { replaceOne: { filter: { _id: op.key }, replacement: { ...op.value }, upsert: true } }
        : { deleteOne: { filter: { _id: op.key } } },
    );
  }
  return runs;
}

function strip(doc: StoredDoc): Record<string, unknown> {
  const value: Record<string, unknown> = { ...doc };
  delete value._id;
  return value;
}

function fenceOf(doc: FenceDoc | null): number {
  return typeof doc?.value === 'number' ? doc.value : 0;
}
