import type { Context } from 'moleculer';
import { call, type Principal, type UserRecord } from '../../../shared/contracts';
import { ForbiddenError, NotFoundError, UnauthorizedError } from '../../../shared/errors';
import type { Ctx, RbacRuntime, Result } from '../runtime';
import { API_KEY_PREFIX, sha256Base64 } from '../tokens';

// One message for every failure: it must not tell an unknown user from a revoked session.
const INVALID = 'Invalid or expired credentials';
const MAX_JWT_LENGTH = 8192;
const MAX_API_KEY_LENGTH = 256;

/**
 * `rbac.authenticate`: resolves a JWT or an API key (exactly one) to a Principal.
 * Successful resolutions are cached for up to 30 s; revocation events drop them.
 */
export async function authenticate(rt: RbacRuntime, ctx: Ctx<'rbac.authenticate'>): Promise<Result<'rbac.authenticate'>> {
  const { jwt, apiKey } = ctx.params;
  if (jwt && apiKey) throw new ForbiddenError('Cannot use both an API key and a JWT');
  if (!jwt && !apiKey) throw new UnauthorizedError('A valid authorisation token is missing');
  const method = jwt ? 'jwt' : 'apikey';
  const credential = (jwt ?? apiKey) as string;
  if (credential.length > (jwt ? MAX_JWT_LENGTH : MAX_API_KEY_LENGTH)) throw new UnauthorizedError(INVALID);

  const digest = sha256Base64(credential);
  const cacheKey = `${method}:${digest}`;
  const cached = rt.cache.get(cacheKey);
  if (cached) {
    if (cached.apiKeyId !== undefined) touchLater(rt, ctx, cached.apiKeyId, 0);
    return { ...cached };
  }

  const generation = rt.cache.generation;
  if (jwt) {
    const { principal, exp } = await resolveJwt(rt, ctx, jwt);
    rt.cache.set(cacheKey, principal, { userId: principal.userId, jti: principal.jti }, { generation, notAfter: exp * 1000 });
    return { ...principal };
  }
  const principal = await resolveApiKey(rt, ctx, credential, digest);
  rt.cache.set(cacheKey, principal, { userId: principal.userId, apiKeyId: principal.apiKeyId }, { generation });
  return { ...principal };
}

async function resolveJwt(rt: RbacRuntime, ctx: Context, token: string): Promise<{ principal: Principal; exp: number }> {
  const codec = await rt.jwt(ctx);
  const claims = codec.verify(token);
  if (!claims) throw new UnauthorizedError(INVALID);
  const { session } = await call(ctx, 'state.getSession', { jti: claims.jti });
  if (!session || session.userId !== claims.id || session.exp * 1000 <= Date.now()) throw new UnauthorizedError(INVALID);
  const user = await userOrUnauthorized(ctx, claims.id);
  // The role comes from the stored user, not the token, so a demotion takes effect without re-login.
  return {
    principal: { userId: user.Id, username: user.Username, role: user.Role, method: 'jwt', jti: claims.jti },
    exp: Math.min(claims.exp, session.exp),
  };
}

async function resolveApiKey(rt: RbacRuntime, ctx: Context, raw: string, digest: string): Promise<Principal> {
  // Every key Capstan or Portainer issues has this prefix: anything else is rejected without a lookup.
  if (!raw.startsWith(API_KEY_PREFIX)) throw new UnauthorizedError(INVALID);
  const { apiKey } = await call(ctx, 'state.findApiKeyByDigest', { digest });
  if (!apiKey) throw new UnauthorizedError(INVALID);
  const user = await userOrUnauthorized(ctx, apiKey.userId);
  touchLater(rt, ctx, apiKey.id, apiKey.lastUsed);
  return { userId: user.Id, username: user.Username, role: user.Role, method: 'apikey', apiKeyId: apiKey.id };
}

async function userOrUnauthorized(ctx: Context, id: number): Promise<UserRecord> {
  try {
    return await call(ctx, 'state.getUser', { id });
  } catch (err) {
    // A deleted user is just another invalid credential; any other failure (state down) is not.
    if (err instanceof NotFoundError || (err as { code?: unknown })?.code === 404) throw new UnauthorizedError(INVALID);
    throw err;
  }
}

/** Records `lastUsed` at most once a minute per key, without making the request wait for it. */
function touchLater(rt: RbacRuntime, ctx: Context, apiKeyId: number, storedLastUsed: number): void {
  const now = Date.now();
  if (!rt.claimTouch(apiKeyId, storedLastUsed, now)) return;
  call(ctx, 'state.touchApiKey', { id: apiKeyId, lastUsed: Math.floor(now / 1000) }).catch((err: unknown) => {
    rt.logger?.warn({ apiKeyId, err: err instanceof Error ? err.message : String(err) }, 'could not record API key use');
  });
}
