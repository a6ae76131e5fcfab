import { call, Role, type ApiKey, type ApiKeyRecord, type Principal } from '../../../shared/contracts';
import { ForbiddenError } from '../../../shared/errors';
import { verifyPassword } from '../passwords';
import { RbacEvents, type Ctx, type RbacRuntime, type Result } from '../runtime';
import { generateApiKey } from '../tokens';

/** An API key without its digest: the only shape that ever leaves rbac. */
export function publicApiKey(k: ApiKeyRecord | ApiKey): ApiKey {
  return { id: k.id, userId: k.userId, description: k.description, prefix: k.prefix, dateCreated: k.dateCreated, lastUsed: k.lastUsed };
}

function assertSelfOrAdmin(principal: Principal, userId: number): void {
  if (principal.userId !== userId && principal.role !== Role.Admin) throw new ForbiddenError('Permission denied to access API keys of this user');
}

/**
 * `rbac.createApiKey`: only users themselves, confirmed by their current password. The raw key
 * is returned once; only its digest and 7-character prefix are stored.
 */
export async function createApiKey(_rt: RbacRuntime, ctx: Ctx<'rbac.createApiKey'>): Promise<Result<'rbac.createApiKey'>> {
  const { principal, userId, description, password } = ctx.params;
  if (principal.userId !== userId) throw new ForbiddenError('Permission denied to create an API key for this user');
  const user = await call(ctx, 'state.getUser', { id: userId });
  // A malformed stored hash throws here on purpose: that is a server fault, not a wrong password.
  if (!(await verifyPassword(password, user.PasswordHash))) throw new ForbiddenError('Invalid password');
  const { raw, digest, prefix } = generateApiKey();
  const record = await call(ctx, 'state.createApiKey', { userId, description, digest, prefix });
  return { rawAPIKey: raw, apiKey: publicApiKey(record) };
}

/** `rbac.listApiKeys`: the user's own keys, or any user's for an admin; 404 for an unknown user. */
export async function listApiKeys(_rt: RbacRuntime, ctx: Ctx<'rbac.listApiKeys'>): Promise<Result<'rbac.listApiKeys'>> {
  const { principal, userId } = ctx.params;
  assertSelfOrAdmin(principal, userId);
  await call(ctx, 'state.getUser', { id: userId });
  return (await call(ctx, 'state.listApiKeys', { userId })).map(publicApiKey);
}

/** `rbac.deleteApiKey`: revokes a key everywhere (state, then every replica's cache). */
export async function deleteApiKey(rt: RbacRuntime, ctx: Ctx<'rbac.deleteApiKey'>): Promise<Result<'rbac.deleteApiKey'>> {
  const { principal, userId, id } = ctx.params;
  assertSelfOrAdmin(principal, userId);
  const result = await call(ctx, 'state.deleteApiKey', { userId, id });
  rt.cache.dropApiKey(id);
  rt.forgetKey(id);
  await ctx.broadcast(RbacEvents.apiKeyRevoked, { id });
  return result;
}
