import { call, Role } from '../../../shared/contracts';
import { BadRequestError, ForbiddenError } from '../../../shared/errors';
import { assertPasswordLength, hashPassword } from '../passwords';
import { publicUser, RbacEvents, type Ctx, type RbacRuntime, type Result } from '../runtime';

/** `rbac.createUser` (admin routes only): 400 on a short password, 409 on a taken username. */
export async function createUser(_rt: RbacRuntime, ctx: Ctx<'rbac.createUser'>): Promise<Result<'rbac.createUser'>> {
  const { Username, Password, Role: role } = ctx.params;
  const settings = await call(ctx, 'state.getSettings', {});
  assertPasswordLength(Password, settings.RequiredPasswordLength);
  const user = await call(ctx, 'state.createUser', { Username, PasswordHash: await hashPassword(Password), Role: role });
  return publicUser(user);
}

/** `rbac.listUsers`: every user, public shape. */
export async function listUsers(_rt: RbacRuntime, ctx: Ctx<'rbac.listUsers'>): Promise<Result<'rbac.listUsers'>> {
  return (await call(ctx, 'state.listUsers', {})).map(publicUser);
}

/** `rbac.getUser`: one user, public shape; 404 when unknown. */
export async function getUser(_rt: RbacRuntime, ctx: Ctx<'rbac.getUser'>): Promise<Result<'rbac.getUser'>> {
  return publicUser(await call(ctx, 'state.getUser', { id: ctx.params.id }));
}

/**
 * `rbac.deleteUser`: admins only, never oneself. state removes the user's keys and sessions;
 * the broadcast makes every replica forget whatever it cached for that user.
 */
export async function deleteUser(rt: RbacRuntime, ctx: Ctx<'rbac.deleteUser'>): Promise<Result<'rbac.deleteUser'>> {
  const { id, principal } = ctx.params;
  if (principal.role !== Role.Admin) throw new ForbiddenError('Access denied to resource');
  if (principal.userId === id) throw new BadRequestError('Cannot remove your own user account. Contact another administrator', { field: 'id' });
  const result = await call(ctx, 'state.deleteUser', { id });
  rt.cache.dropUser(id);
  await ctx.broadcast(RbacEvents.userDeleted, { id });
  return result;
}
