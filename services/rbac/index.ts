import type { ServiceSchema } from 'moleculer';
import { Type } from '@sinclair/typebox';
import type { Config } from '../../shared/config';
import { Credentials, Id, IdParams, Principal, UserCreate } from '../../shared/contracts';
import { createApiKey, deleteApiKey, listApiKeys } from './actions/api-keys';
import { authenticate } from './actions/authenticate';
import { adminCheck, adminInit, login, logout } from './actions/sign-in';
import { createUser, deleteUser, getUser, listUsers } from './actions/users';
import { dummyPasswordHash } from './passwords';
import { RbacEvents, RbacRuntime, type Ctx } from './runtime';

const Jti = Type.String({ minLength: 1, maxLength: 64 });
// Generous bounds: authenticate reports oversized credentials itself, as a 401 rather than a 422.
const Credential = Type.String({ maxLength: 16384 });

const params = {
  login: Type.Object({
    ...Credentials.properties,
    clientAddress: Type.Optional(Type.String({ maxLength: 256 })),
  }, { additionalProperties: false }),
  logout: Type.Object({ jti: Jti }),
  authenticate: Type.Object({ jwt: Type.Optional(Credential), apiKey: Type.Optional(Credential) }),
  deleteUser: Type.Object({ id: Id, principal: Principal }),
  createApiKey: Type.Object({
    principal: Principal,
    userId: Id,
    description: Type.String({ minLength: 1, maxLength: 128 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
  }),
  listApiKeys: Type.Object({ principal: Principal, userId: Id }),
  deleteApiKey: Type.Object({ principal: Principal, userId: Id, id: Id }),
};

/**
 * `rbac`: users, sign-in, sessions and API keys. It keeps nothing on disk: state persists users,
 * keys, sessions and the JWT secret. Credentials resolved by `authenticate` are cached in memory
 * for 30 s and dropped on `session.revoked`, `apiKey.revoked` and `user.deleted`, which rbac
 * broadcasts itself so every replica forgets a revoked credential at once.
 */
export function rbacService(_config: Config): ServiceSchema {
  const rt = new RbacRuntime();
  return {
    name: 'rbac',
    dependencies: ['state'],
    actions: {
      adminCheck: { handler: (ctx: Ctx<'rbac.adminCheck'>) => adminCheck(rt, ctx) },
      adminInit: { params: Credentials, handler: (ctx: Ctx<'rbac.adminInit'>) => adminInit(rt, ctx) },
      login: { params: params.login, handler: (ctx: Ctx<'rbac.login'>) => login(rt, ctx) },
      logout: { params: params.logout, handler: (ctx: Ctx<'rbac.logout'>) => logout(rt, ctx) },
      authenticate: { params: params.authenticate, handler: (ctx: Ctx<'rbac.authenticate'>) => authenticate(rt, ctx) },
      createUser: { params: UserCreate, handler: (ctx: Ctx<'rbac.createUser'>) => createUser(rt, ctx) },
      listUsers: { handler: (ctx: Ctx<'rbac.listUsers'>) => listUsers(rt, ctx) },
      getUser: { params: IdParams, handler: (ctx: Ctx<'rbac.getUser'>) => getUser(rt, ctx) },
      deleteUser: { params: params.deleteUser, handler: (ctx: Ctx<'rbac.deleteUser'>) => deleteUser(rt, ctx) },
      createApiKey: { params: params.createApiKey, handler: (ctx: Ctx<'rbac.createApiKey'>) => createApiKey(rt, ctx) },
      listApiKeys: { params: params.listApiKeys, handler: (ctx: Ctx<'rbac.listApiKeys'>) => listApiKeys(rt, ctx) },
      deleteApiKey: { params: params.deleteApiKey, handler: (ctx: Ctx<'rbac.deleteApiKey'>) => deleteApiKey(rt, ctx) },
    },
    events: {
      // Broadcast by whichever replica handled the revocation (this one included).
      [RbacEvents.sessionRevoked]: {
        params: Type.Object({ jti: Jti }),
        handler: (ctx: { params: { jti: string } }) => void rt.cache.dropJti(ctx.params.jti),
      },
      [RbacEvents.apiKeyRevoked]: {
        params: Type.Object({ id: Id }),
        handler: (ctx: { params: { id: number } }) => {
          rt.cache.dropApiKey(ctx.params.id);
          rt.forgetKey(ctx.params.id);
        },
      },
      [RbacEvents.userDeleted]: {
        params: Type.Object({ id: Id }),
        handler: (ctx: { params: { id: number } }) => void rt.cache.dropUser(ctx.params.id),
      },
    },
    created() {
      rt.logger = this.logger;
    },
    async started() {
      // Computed up front so the first sign-in with an unknown username is not faster than others.
      await dummyPasswordHash();
    },
    async stopped() {
      rt.cache.clear();
    },
  };
}
