import type { Context, Logger } from 'moleculer';
import { call, type ActionMap, type Principal, type User, type UserRecord } from '../../shared/contracts';
import { AuthCache } from './auth-cache';
import { JwtCodec } from './tokens';

/** Params and result of an action, by full name, from the shared contract map. */
export type Params<K extends keyof ActionMap> = ActionMap[K]['params'];
export type Result<K extends keyof ActionMap> = ActionMap[K]['result'];
/** What every handler receives: the action's typed context. */
export type Ctx<K extends keyof ActionMap> = Context<Params<K>>;

/** `lastUsed` of an API key is written at most this often per key (Portainer: once a minute). */
export const TOUCH_INTERVAL_MS = 60_000;
const MAX_TOUCH_ENTRIES = 10_000;

/** Event names rbac broadcasts and listens to, so every replica drops revoked credentials at once. */
export const RbacEvents = {
  sessionRevoked: 'session.revoked',
  apiKeyRevoked: 'apiKey.revoked',
  userDeleted: 'user.deleted',
} as const;

/**
 * The in-memory state of one rbac service instance: the credential cache, the JWT codec built
 * from the persisted secret, and when each API key's `lastUsed` was last written.
 */
export class RbacRuntime {
  readonly cache = new AuthCache<Principal>({ ttlMs: 30_000, maxEntries: 10_000 });
  logger?: Logger;
  private codec?: Promise<JwtCodec>;
  private readonly touched = new Map<number, number>();

  /** The JWT codec; the secret is fetched from state once and then kept in memory. */
  jwt(ctx: Context): Promise<JwtCodec> {
    this.codec ??= call(ctx, 'state.getSecret', { name: 'jwt' })
      .then(({ value }) => new JwtCodec(value))
      .catch((err: unknown) => {
        // Let the next request try again instead of caching a failure forever.
        this.codec = undefined;
        throw err;
      });
    return this.codec;
  }

  /**
   * True when this key's `lastUsed` is due for a write (and records that it is being written).
   * `stored` is the value state holds, so a key another replica touched recently is skipped too.
   */
  claimTouch(apiKeyId: number, stored: number, now = Date.now()): boolean {
    const last = Math.max(this.touched.get(apiKeyId) ?? 0, stored * 1000);
    if (now - last < TOUCH_INTERVAL_MS) return false;
    if (this.touched.size >= MAX_TOUCH_ENTRIES) {
      for (const [id, at] of this.touched) if (now - at >= TOUCH_INTERVAL_MS) this.touched.delete(id);
      if (this.touched.size >= MAX_TOUCH_ENTRIES) this.touched.clear();
    }
    this.touched.set(apiKeyId, now);
    return true;
  }

  /** Forgets the touch bookkeeping of a revoked key. */
  forgetKey(apiKeyId: number): void {
    this.touched.delete(apiKeyId);
  }
}

/** The public shape of a user: never the password hash. */
export function publicUser(u: UserRecord | User): User {
  return { Id: u.Id, Username: u.Username, Role: u.Role, CreationDate: u.CreationDate };
}
