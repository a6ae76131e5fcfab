import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { call, Id } from '../../../shared/contracts';
import { UnauthorizedError } from '../../../shared/errors';
import { proxyRequest, proxyUpgrade } from '../../../shared/http';
import { principalOf } from '../../plugins/auth';
import { addUpgradeRoute, upgradeError } from '../../upgrade';
import { TunnelKeepAlive } from './keepalive';
import { readFromSnapshot, snapshotRead } from './snapshot-reads';
import { AsyncEnvironmentError, CALLER_ONLY_HEADERS, dockerTargetResolver } from './target';

const PATH = /^\/api\/endpoints\/([0-9]{1,10})\/docker(\/[^?]*)?(\?.*)?$/;

/**
 * `/api/endpoints/{id}/docker/**`: the Docker Engine API of an environment, through its tunnel and
 * agent (reference 4.4). Bodies and answers stream untouched (build contexts, archives, logs,
 * events, stats); hijacked attach/exec upgrades are taken from the server's `upgrade` event.
 */
export default async function dockerRoutes(fastify: FastifyInstance): Promise<void> {
  const resolve = dockerTargetResolver(fastify.broker);
  // Touch well inside the tunnel service's idle limit (the same CAPSTAN_TUNNEL_IDLE_MS).
  const keepAlive = new TunnelKeepAlive(fastify.broker, Math.min(60_000, Math.max(500, Math.floor(fastify.config.tunnelIdleMs / 3))));
  fastify.addHook('onClose', async () => keepAlive.stop());
  // Leave every body unread: it is piped to the engine as it arrives.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_req, _payload, done) => done(null));

  fastify.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
    url: '/endpoints/:id/docker/*',
    schema: {
      // The Docker Engine API itself is documented by Docker; it is passed through untouched.
      hide: true,
      tags: ['docker'],
      summary: 'Docker Engine API of the environment (proxied through its agent)',
      params: Type.Object({ id: Id, '*': Type.String() }),
    },
    handler: async (request, reply) => {
      const { id, '*': rest } = request.params as { id: number; '*': string };
      const query = request.raw.url!.includes('?') ? request.raw.url!.slice(request.raw.url!.indexOf('?')) : '';
      let resolved: Awaited<ReturnType<typeof resolve>>;
      try {
        resolved = await resolve(principalOf(request), id);
      } catch (err) {
        // Async environments (access already checked): reads come from the latest snapshot.
        if (!(err instanceof AsyncEnvironmentError) || (request.method !== 'GET' && request.method !== 'HEAD') || !snapshotRead(`/${rest}`)) throw err;
        const { body, time } = await readFromSnapshot(fastify.broker, id, `/${rest}`, query.slice(1));
        return reply.header('x-capstan-snapshot-time', String(time)).type('application/json').send(JSON.stringify(body));
      }
      const { target, headers } = resolved;
      reply.hijack();
      reply.raw.once('close', keepAlive.hold(id));
      proxyRequest(request.raw, reply.raw, target, { path: `/${rest}${query}`, headers, omit: CALLER_ONLY_HEADERS, onError: (err) => request.log.warn({ err: err.message, id }, 'docker proxy error') });
    },
  });

  addUpgradeRoute(fastify.server, PATH, (req, socket, head, m) => {
    void (async () => {
      const apiKey = [req.headers['x-api-key']].flat()[0];
      const auth = req.headers.authorization;
      const jwt = auth && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '') : undefined;
      if (!apiKey && !jwt) throw new UnauthorizedError('Unauthorized', 'A valid authorisation token is missing');
      const principal = await call(fastify.broker, 'rbac.authenticate', apiKey ? { apiKey } : { jwt });
      const { target, headers } = await resolve(principal, Number(m[1]));
      socket.once('close', keepAlive.hold(Number(m[1])));
      proxyUpgrade(req, socket, head, target, { path: `${m[2] ?? '/'}${m[3] ?? ''}`, headers, omit: CALLER_ONLY_HEADERS });
    })().catch((err) => {
      const status = typeof err?.code === 'number' && err.code >= 400 && err.code < 600 ? err.code : 502;
      upgradeError(socket, status, status >= 500 && !err?.type ? 'The environment did not answer' : err.message, err?.data);
    });
  });
}
