/** What an entry was derived from, so a revocation can find every entry it invalidates. */
export interface AuthCacheTags {
  userId: number;
  jti?: string;
  apiKeyId?: number;
}

/** Options of {@link AuthCache}. */
export interface AuthCacheOptions {
  /** Longest time an entry is served, in ms (default 30 s). */
  ttlMs?: number;
  /** Most entries kept; the least recently used go first (default 10,000). */
  maxEntries?: number;
  /** Clock in ms; tests pass a fake one. */
  now?: () => number;
}

interface Entry<V> {
  value: V;
  expiresAt: number;
  tags: AuthCacheTags;
}

/**
 * In-memory cache of resolved credentials, keyed by a digest of the presented credential.
 *
 * Bounded in both time and size. A `Map` keeps insertion order, so re-inserting on every hit
 * makes the first key the least recently used one. Revocations (`dropJti`, `dropApiKey`,
 * `dropUser`) bump a generation counter: a resolution that started before a revocation and
 * finishes after it passes its starting {@link generation} to {@link set}, which then refuses
 * to store a result that may already be stale.
 */
export class AuthCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private gen = 0;

  constructor(opts: AuthCacheOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
    this.now = opts.now ?? Date.now;
  }

  /** Current generation; read it before resolving a credential and hand it to {@link set}. */
  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The live value for `key`, or undefined (expired entries are removed on the way). */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) return undefined;
    this.entries.set(key, entry);
    return entry.value;
  }

  /**
   * Stores a value for at most the TTL (or until `notAfter`, epoch ms, when that is sooner).
   * Returns false and stores nothing when a revocation happened since `generation`.
   */
  set(key: string, value: V, tags: AuthCacheTags, opts: { generation?: number; notAfter?: number } = {}): boolean {
    if (opts.generation !== undefined && opts.generation !== this.gen) return false;
    const now = this.now();
    const expiresAt = Math.min(now + this.ttlMs, opts.notAfter ?? Infinity);
    if (expiresAt <= now) return false;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt, tags });
    this.evictOldest();
    return true;
  }

  /** Forgets every entry of a signed-in session. */
  dropJti(jti: string): number {
    return this.dropWhere((t) => t.jti === jti);
  }

  /** Forgets every entry resolved through an API key. */
  dropApiKey(id: number): number {
    return this.dropWhere((t) => t.apiKeyId === id);
  }

  /** Forgets every entry of a user (all their sessions and keys). */
  dropUser(userId: number): number {
    return this.dropWhere((t) => t.userId === userId);
  }

  clear(): void {
    this.gen++;
    this.entries.clear();
  }

  // Revocations are rare and the cache is bounded, so a linear scan beats keeping indexes in sync.
  private dropWhere(match: (tags: AuthCacheTags) => boolean): number {
    this.gen++;
    let dropped = 0;
    for (const [key, entry] of this.entries) {
      if (match(entry.tags)) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  // The first key is the least recently used (hits re-insert). Expired entries need no special
  // treatment: nothing refreshes them, so they drift to the front and leave first.
  private evictOldest(): void {
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) return;
      this.entries.delete(oldest.value);
    }
  }
}
