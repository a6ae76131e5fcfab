import { call, durationMs } from '../../../shared/contracts';
import { ConflictError, UnauthorizedError } from '../../../shared/errors';
import { assertPasswordLength, dummyPasswordHash, hashPassword, PasswordHashFormatError, verifyPassword } from '../passwords';
import { publicUser, RbacEvents, type Ctx, type RbacRuntime, type Result } from '../runtime';
import { newJti } from '../tokens';

const INVALID_CREDENTIALS = 'Invalid credentials';

/** `rbac.adminCheck`: whether the first administrator exists. */
export function adminCheck(_rt: RbacRuntime, ctx: Ctx<'rbac.adminCheck'>): Promise<Result<'rbac.adminCheck'>> {
  return call(ctx, 'state.adminExists', {});
}

/** `rbac.adminInit`: creates the first administrator; 409 once one exists. */
export async function adminInit(_rt: RbacRuntime, ctx: Ctx<'rbac.adminInit'>): Promise<Result<'rbac.adminInit'>> {
  const { Username, Password } = ctx.params;
  // Portainer answers 409 before looking at the password; it also spares a KDF run per attempt.
  if ((await call(ctx, 'state.adminExists', {})).exists) throw new ConflictError('An administrator user already exists');
  const settings = await call(ctx, 'state.getSettings', {});
  assertPasswordLength(Password, settings.RequiredPasswordLength);
  // state.initAdmin re-checks atomically, so two racing inits still yield exactly one admin.
  const admin = await call(ctx, 'state.initAdmin', { Username, PasswordHash: await hashPassword(Password) });
  return publicUser(admin);
}

/**
 * `rbac.login`: checks the password and issues a session JWT. Unknown users are verified against
 * a dummy hash so both failures take the same time and carry the same message.
 */
export async function login(rt: RbacRuntime, ctx: Ctx<'rbac.login'>): Promise<Result<'rbac.login'>> {
  const { Username, Password, clientAddress } = ctx.params;
  const { user } = await call(ctx, 'state.findUserByName', { username: Username });
  let ok = false;
  try {
    ok = await verifyPassword(Password, user ? user.PasswordHash : await dummyPasswordHash());
  } catch (err) {
    if (!(err instanceof PasswordHashFormatError)) throw err;
    rt.logger?.error({ userId: user?.Id, err: err.message }, 'stored password hash is unreadable; sign-in refused');
  }
  if (!user || !ok) {
    rt.logger?.info({ clientAddress }, 'sign-in failed');
    throw new UnauthorizedError(INVALID_CREDENTIALS);
  }

  const [settings, codec] = await Promise.all([call(ctx, 'state.getSettings', {}), rt.jwt(ctx)]);
  const exp = Math.floor((Date.now() + durationMs(settings.UserSessionTimeout)) / 1000);
  const jti = newJti();
  // The session is persisted before the token leaves, so logout on any replica can revoke it.
  await call(ctx, 'state.createSession', { jti, userId: user.Id, exp });
  const jwt = codec.sign({ id: user.Id, username: user.Username, role: user.Role, scope: 'default', jti, exp });
  rt.logger?.info({ userId: user.Id, clientAddress }, 'signed in');
  return { jwt };
}

/** `rbac.logout`: revokes a session everywhere (state, then every replica's cache). */
export async function logout(rt: RbacRuntime, ctx: Ctx<'rbac.logout'>): Promise<Result<'rbac.logout'>> {
  const { jti } = ctx.params;
  await call(ctx, 'state.deleteSession', { jti });
  rt.cache.dropJti(jti);
  await ctx.broadcast(RbacEvents.sessionRevoked, { jti });
  return { ok: true };
}
