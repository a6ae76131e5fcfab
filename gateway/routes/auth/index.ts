import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { call, Credentials } from '../../../shared/contracts';
import { principalOf } from '../../plugins/auth';
import { errorResponses, NoContent } from '../../schemas';

const Jwt = Type.Object({ jwt: Type.String({ description: 'HS256 JWT; send as `Authorization: Bearer <jwt>`' }) }, { $id: 'AuthResponse' });

/** `/api/auth`: sign-in with username and password, sign-out. */
const authRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/auth', {
    config: { public: true, rateLimit: fastify.signInRateLimit },
    schema: {
      tags: ['auth'],
      summary: 'Sign in; returns a JWT',
      body: Credentials,
      response: { 200: Jwt, ...errorResponses([422, 429], { authenticated: false }) },
    },
  }, async (request) => call(fastify.broker, 'rbac.login', { Username: request.body.Username, Password: request.body.Password, clientAddress: request.ip }));

  fastify.post('/auth/logout', {
    schema: {
      tags: ['auth'],
      summary: 'Sign out: revokes the JWT of this session (API key callers get 204 and keep their key)',
      response: { 204: NoContent, ...errorResponses() },
    },
  }, async (request, reply) => {
    const principal = principalOf(request);
    if (principal.method === 'jwt' && principal.jti) await call(fastify.broker, 'rbac.logout', { jti: principal.jti });
    return reply.code(204).send(null);
  });
};

export default authRoutes;
