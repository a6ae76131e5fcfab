import { createHash, randomBytes } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';

/** Claims of a Capstan session JWT (Portainer's names). `exp` is in epoch seconds. */
export interface JwtClaims {
  id: number;
  username: string;
  role: number;
  scope: 'default';
  jti: string;
  exp: number;
}

/** A fresh JWT id: 16 random bytes, hex. */
export function newJti(): string {
  return randomBytes(16).toString('hex');
}

/** base64(SHA-256(value)): how API keys are stored (Portainer's digest) and how the cache is keyed. */
export function sha256Base64(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64');
}

/** Prefix Portainer puts on raw API keys; the first 7 characters of a key are shown as its `prefix`. */
export const API_KEY_PREFIX = 'ptr_';

/** A new API key: the raw key (shown once, never stored), its digest and its display prefix. */
export function generateApiKey(): { raw: string; digest: string; prefix: string } {
  const raw = API_KEY_PREFIX + randomBytes(32).toString('base64url');
  return { raw, digest: sha256Base64(raw), prefix: raw.slice(0, 7) };
}

/**
 * HS256 signer and verifier over one secret. The verifier accepts only HS256 (no `none`, no
 * algorithm confusion) and rejects expired tokens; claim shapes are checked here too, so callers
 * get either well-formed claims or null.
 */
export class JwtCodec {
  private readonly signer: (payload: Record<string, unknown>) => string;
  private readonly verifier: (token: string) => unknown;

  constructor(secret: string) {
    if (!secret) throw new Error('JWT secret is empty');
    this.signer = createSigner({ key: secret, algorithm: 'HS256' });
    this.verifier = createVerifier({ key: secret, algorithms: ['HS256'], requiredClaims: ['id', 'jti', 'exp'], cache: false });
  }

  sign(claims: JwtClaims): string {
    return this.signer({ ...claims });
  }

  /** The claims of a valid, unexpired token, or null for anything else. */
  verify(token: string): JwtClaims | null {
    let payload: unknown;
    try {
      payload = this.verifier(token);
    } catch {
      return null;
    }
    const c = payload as Partial<JwtClaims> | null;
    if (!c || typeof c !== 'object') return null;
    if (!Number.isInteger(c.id) || (c.id as number) < 1) return null;
    if (typeof c.jti !== 'string' || c.jti.length < 16 || c.jti.length > 64) return null;
    if (!Number.isInteger(c.exp)) return null;
    // Only session tokens are accepted here (Portainer also has a "kubeconfig" scope).
    if (c.scope !== 'default') return null;
    return c as JwtClaims;
  }
}
