import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { call, Role, type Principal } from '../../shared/contracts';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without credentials (status, admin init, sign-in, API docs). Default: authenticated. */
    public?: boolean;
    /** Administrators only (role 1); others get 403 before the handler runs. */
    admin?: boolean;
  }
  interface FastifyRequest {
    /** Who is calling; set on every authenticated route, null on public ones. */
    principal: Principal | null;
  }
}

/** The API key of a request: `X-API-Key` header, else the `x-api-key` query parameter (any case). */
export function apiKeyOf(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  if (fromHeader) return fromHeader;
  const query = request.query;
  if (query && typeof query === 'object') {
    for (const [name, value] of Object.entries(query as Record<string, unknown>)) {
      if (name.toLowerCase() !== 'x-api-key') continue;
      const v = Array.isArray(value) ? value[0] : value;
      if (typeof v === 'string' && v) return v;
    }
  }
  return undefined;
}

/**
 * The token of an `Authorization` header: `Bearer <jwt>`. Any other scheme is passed on as is,
 * so rbac still sees "two credentials" when an API key is sent too (403, as Portainer).
 */
function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : header;
}

/** The principal of an authenticated route (the auth hook guarantees it is set). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new UnauthorizedError('Unauthorized', 'Authentication required');
  return request.principal;
}

/** 403 unless the caller is an administrator or the user `userId` themself. */
export function assertSelfOrAdmin(principal: Principal, userId: number): void {
  if (principal.role !== Role.Admin && principal.userId !== userId) throw new ForbiddenError('Access denied', 'Permission denied to access this user');
}

/**
 * Authentication for every route unless its config says `public: true`, and the admin gate for
 * `admin: true`. It runs in `onRequest`, before the body is read, parsed or validated, so an
 * anonymous caller learns nothing about the resource (not even whether the id is valid).
 */
export default fp(async (fastify) => {
  fastify.decorateRequest('principal', null);

  fastify.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const config = request.routeOptions.config;
    if (config.public === true) return;

    const apiKey = apiKeyOf(request);
    const jwt = bearerOf(request);
    if (!apiKey && !jwt) throw new UnauthorizedError('Unauthorized', 'A valid authorisation token is missing');
    if (!apiKey && jwt && !/^Bearer[ \t]/i.test(request.headers.authorization ?? '')) {
      throw new UnauthorizedError('Unauthorized', 'Invalid authorization header: expected "Bearer <token>"');
    }
    const principal = await call(fastify.broker, 'rbac.authenticate', apiKey && jwt ? { apiKey, jwt } : apiKey ? { apiKey } : { jwt });
    request.principal = principal;
    if (config.admin === true && principal.role !== Role.Admin) throw new ForbiddenError('Access denied', 'Administrator role required');
  });
}, { name: 'capstan-auth', fastify: '5.x', dependencies: ['capstan-broker'] });
