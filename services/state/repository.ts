import type { Key, Store, WriteOp } from '../../shared/store';
import { FencedError } from '../../shared/errors';

type Doc = Record<string, unknown>;

/**
 * The leader's in-memory view of the main store. Reads never touch the disk; a write is a list of
 * ops committed under the fencing token and applied to memory only after the commit succeeded,
 * so memory never shows what the store does not hold. Uniqueness reservations and per-key locks
 * let many independent writes commit concurrently (the store batches them) without lost updates.
 */
export class Repository {
  private readonly data = new Map<string, Map<Key, Doc>>();
  private readonly seq = new Map<string, number>();
  private readonly reserved = new Set<string>();
  private readonly locks = new Map<string, Promise<void>>();
  private fenced = false;
  /** collection -> field -> normalised value -> key */
  private readonly indexes = new Map<string, Map<string, Map<string, Key>>>();
  /** Key-spaces of one-number documents, held as bare numbers (see {@link defineNumbers}). */
  private readonly numbers = new Map<string, { field: string; values: Map<Key, number> }>();

  constructor(private readonly store: Store, readonly fence: number, private readonly onFenced: (err: Error) => void) {}

  /** Declares a case-insensitive lookup index on a string field; call before `load`. */
  defineIndex(collection: string, field: string): void {
    const byField = this.indexes.get(collection) ?? new Map<string, Map<string, Key>>();
    byField.set(field, new Map());
    this.indexes.set(collection, byField);
  }

  /** The key of the document whose `field` equals `value` (case-insensitive), if any. */
  findKey(collection: string, field: string, value: string): Key | undefined {
    const idx = this.indexes.get(collection)?.get(field);
    if (!idx) throw new Error(`no index on ${collection}.${field}`);
    return idx.get(norm(value));
  }

  /**
   * Declares a cached collection whose documents are `{ [field]: number }` (last check-ins): memory
   * holds the bare number, so a batch of thousands is applied without a document or a clone each.
   * Call before `load`; read with {@link number}.
   */
  defineNumbers(collection: string, field: string): void {
    this.numbers.set(collection, { field, values: new Map() });
  }

  /** The number stored under `key` in a {@link defineNumbers} collection, if any. */
  number(collection: string, key: Key): number | undefined {
    const n = this.numbers.get(collection);
    if (!n) throw new Error(`collection ${collection} holds no numbers`);
    return n.values.get(key);
  }

  /** Loads the cached collections; sequences resume after the highest stored key or counter. */
  async load(collections: readonly string[]): Promise<void> {
    for (const c of collections) {
      const numbers = this.numbers.get(c);
      if (numbers) {
        for await (const { key, value } of this.store.scan<Doc>(c)) {
          if (typeof value[numbers.field] === 'number') numbers.values.set(key, value[numbers.field] as number);
        }
        continue;
      }
      const m = new Map<Key, Doc>();
      let max = 0;
      for await (const { key, value } of this.store.scan<Doc>(c)) {
        m.set(key, value);
        this.indexAdd(c, key, value);
        if (typeof key === 'number' && key > max) max = key;
      }
      const stored = await this.store.get<{ v: number }>('_meta', `seq:${c}`);
      this.data.set(c, m);
      this.seq.set(c, Math.max(max, stored?.v ?? 0));
    }
  }

  get<T = Doc>(collection: string, key: Key): T | undefined {
    const v = this.coll(collection).get(key);
    return v === undefined ? undefined : (structuredClone(v) as T);
  }

  /** The live value (no copy), read-only by convention: for reads that keep nothing of it. */
  peek<T = Doc>(collection: string, key: Key): Readonly<T> | undefined {
    return this.coll(collection).get(key) as T | undefined;
  }

  /** Live values, read-only by convention: callers must not mutate them. */
  values<T = Doc>(collection: string): IterableIterator<T> {
    return this.coll(collection).values() as IterableIterator<T>;
  }

  size(collection: string): number {
    return this.coll(collection).size;
  }

  /** Next id of a collection; the op that persists the counter must go into the same commit. */
  nextId(collection: string): { id: number; op: WriteOp } {
    const id = (this.seq.get(collection) ?? 0) + 1;
    this.seq.set(collection, id);
    return { id, op: { op: 'put', collection: '_meta', key: `seq:${collection}`, value: { v: id } } };
  }

  /** Holds `tokens` (e.g. `environments:name:prod`) while `fn` runs; false if one is already held. */
  async reserve<T>(tokens: string[], fn: () => Promise<T>): Promise<T | typeof RESERVED> {
    if (tokens.some((t) => this.reserved.has(t))) return RESERVED;
    tokens.forEach((t) => this.reserved.add(t));
    try {
      return await fn();
    } finally {
      tokens.forEach((t) => this.reserved.delete(t));
    }
  }

  /** Runs `fn` after every earlier holder of the same keys: read-modify-write without lost updates. */
  async withLock<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const prev = keys.map((k) => this.locks.get(k) ?? Promise.resolve());
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    keys.forEach((k) => this.locks.set(k, mine));
    await Promise.all(prev);
    try {
      return await fn();
    } finally {
      release();
      keys.forEach((k) => this.locks.get(k) === mine && this.locks.delete(k));
    }
  }

  /** Commits ops under the fence, then applies them to memory. */
  async commit(ops: WriteOp[]): Promise<void> {
    if (this.fenced) throw new FencedError();
    try {
      await this.store.commit(this.fence, ops);
    } catch (err) {
      if (err instanceof FencedError) {
        this.fenced = true;
        this.onFenced(err);
      }
      throw err;
    }
    for (const op of ops) {
      const numbers = this.numbers.get(op.collection);
      if (numbers) {
        if (op.op === 'put') numbers.values.set(op.key, op.value[numbers.field] as number);
        else numbers.values.delete(op.key);
        continue;
      }
      if (op.collection === '_meta' || !this.data.has(op.collection)) continue;
      const m = this.coll(op.collection);
      const old = m.get(op.key);
      if (old) this.indexRemove(op.collection, op.key, old);
      if (op.op === 'put') {
        const v = structuredClone(op.value);
        m.set(op.key, v);
        this.indexAdd(op.collection, op.key, v);
      } else m.delete(op.key);
    }
  }

  private indexAdd(c: string, key: Key, doc: Doc) {
    for (const [field, idx] of this.indexes.get(c) ?? []) if (typeof doc[field] === 'string') idx.set(norm(doc[field] as string), key);
  }

  private indexRemove(c: string, key: Key, doc: Doc) {
    for (const [field, idx] of this.indexes.get(c) ?? []) {
      const v = typeof doc[field] === 'string' ? norm(doc[field] as string) : undefined;
      if (v !== undefined && idx.get(v) === key) idx.delete(v);
    }
  }

  private coll(c: string): Map<Key, Doc> {
    const m = this.data.get(c);
    if (!m) throw new Error(`collection ${c} is not cached`);
    return m;
  }
}

const norm = (s: string) => s.trim().toLowerCase();

/** Returned by `reserve` when another write holds one of the tokens. */
export const RESERVED = Symbol('reserved');
