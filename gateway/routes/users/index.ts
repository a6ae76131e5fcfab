import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ApiKey, ApiKeyCreate, ApiKeyCreated, call, Credentials, Id, IdParams, User, UserCreate } from '../../../shared/contracts';
import { NotFoundError } from '../../../shared/errors';
import { assertSelfOrAdmin, principalOf } from '../../plugins/auth';
import { errorResponses, NoContent } from '../../schemas';

const TokenParams = Type.Object({ id: Id, keyId: Id });
const tags = ['users'];

/** `/api/users`: first admin, users, and their API keys. */
const userRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;

  fastify.get('/users/admin/check', {
    config: { public: true },
    schema: { tags, summary: 'Whether an administrator exists (204) or not (404)', response: { 204: NoContent, ...errorResponses([404], { authenticated: false }) } },
  }, async (_request, reply) => {
    const { exists } = await call(broker, 'rbac.adminCheck', {});
    if (!exists) throw new NotFoundError('No administrator account found inside the database', 'Create one with POST /api/users/admin/init');
    return reply.code(204).send(null);
  });

  fastify.post('/users/admin/init', {
    config: { public: true, rateLimit: fastify.signInRateLimit },
    schema: { tags, summary: 'Create the first administrator (once)', body: Credentials, response: { 200: User, ...errorResponses([409, 429], { authenticated: false }) } },
  }, async (request) => call(broker, 'rbac.adminInit', { Username: request.body.Username, Password: request.body.Password }));

  fastify.post('/users', {
    config: { admin: true },
    schema: { tags, summary: 'Create a user', body: UserCreate, response: { 200: User, ...errorResponses([409]) } },
  }, async (request) => call(broker, 'rbac.createUser', { Username: request.body.Username, Password: request.body.Password, Role: request.body.Role }));

  fastify.get('/users', {
    config: { admin: true },
    schema: { tags, summary: 'List users', response: { 200: Type.Array(User), ...errorResponses() } },
  }, async () => call(broker, 'rbac.listUsers', {}));

  fastify.get('/users/me', {
    schema: { tags, summary: 'The calling user', response: { 200: User, ...errorResponses([404]) } },
  }, async (request) => call(broker, 'rbac.getUser', { id: principalOf(request).userId }));

  fastify.get('/users/:id', {
    schema: { tags, summary: 'A user (self or administrator)', params: IdParams, response: { 200: User, ...errorResponses([404]) } },
  }, async (request) => {
    assertSelfOrAdmin(principalOf(request), request.params.id);
    return call(broker, 'rbac.getUser', { id: request.params.id });
  });

  fastify.delete('/users/:id', {
    config: { admin: true },
    schema: { tags, summary: 'Delete a user', params: IdParams, response: { 204: NoContent, ...errorResponses([404, 409]) } },
  }, async (request, reply) => {
    await call(broker, 'rbac.deleteUser', { id: request.params.id, principal: principalOf(request) });
    return reply.code(204).send(null);
  });

  fastify.post('/users/:id/tokens', {
    config: { rateLimit: fastify.signInRateLimit },
    schema: {
      tags, summary: 'Create an API key (the raw key is returned once)', params: IdParams, body: ApiKeyCreate,
      response: { 200: ApiKeyCreated, ...errorResponses([404, 422, 429]) },
    },
  }, async (request) => call(broker, 'rbac.createApiKey', {
    principal: principalOf(request), userId: request.params.id, description: request.body.description, password: request.body.password,
  }));

  fastify.get('/users/:id/tokens', {
    schema: { tags, summary: "A user's API keys", params: IdParams, response: { 200: Type.Array(ApiKey), ...errorResponses([404]) } },
  }, async (request) => call(broker, 'rbac.listApiKeys', { principal: principalOf(request), userId: request.params.id }));

  fastify.delete('/users/:id/tokens/:keyId', {
    schema: { tags, summary: 'Revoke an API key', params: TokenParams, response: { 204: NoContent, ...errorResponses([404]) } },
  }, async (request, reply) => {
    await call(broker, 'rbac.deleteApiKey', { principal: principalOf(request), userId: request.params.id, id: request.params.keyId });
    return reply.code(204).send(null);
  });
};

export default userRoutes;
