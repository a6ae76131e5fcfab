import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { call, EdgeStatus, Environment, IdParams } from '../../../shared/contracts';
import { errorResponses } from '../../schemas';

const tags = ['edge'];

/** One header value (Node lower-cases names; a repeated header counts by its first value). */
function header(v: string | string[] | undefined, max: number): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined ? undefined : s.slice(0, max);
}

const NotModified = Type.Null({ description: 'Not modified: the reply has the ETag the agent sent' });

/**
 * Edge agent routes. The check-in is public (agents have no user credentials: the Edge ID check
 * in `polling` is their authentication) and kept cheap: no body, no auth call, one call to polling,
 * whose answer (status, ETag, exact JSON bytes) is sent as is.
 */
const edgeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;

  fastify.get('/endpoints/:id/edge/status', {
    config: { public: true },
    schema: {
      tags,
      summary: 'Edge agent check-in (X-PortainerAgent-EdgeID, Portainer-Agent, Portainer-Agent-Platform, If-None-Match); the first one binds the Edge ID',
      params: IdParams,
      response: { 200: EdgeStatus, 304: NotModified, ...errorResponses([403, 404], { authenticated: false }) },
    },
  }, async (request, reply) => {
    const h = request.headers;
    const r = await call(broker, 'polling.checkin', {
      id: request.params.id,
      edgeId: header(h['x-portaineragent-edgeid'], 1024),
      agentVersion: header(h['portainer-agent'], 128),
      platform: header(h['portainer-agent-platform'], 16),
      ifNoneMatch: header(h['if-none-match'], 1024),
    });
    // Untyped: the body is already serialised (the ETag covers those exact bytes).
    const raw = reply as FastifyReply;
    if (r.status === 200) return raw.header('etag', r.etag).type('application/json').send(r.body);
    if (r.status === 304) return raw.code(304).header('etag', r.etag).send();
    return raw.code(r.status).send(r.error);
  });

  fastify.get('/endpoints/:id/status', {
    config: { public: true },
    schema: {
      tags,
      summary: 'Legacy Edge agent check-in path: 308 to /api/endpoints/{id}/edge/status',
      deprecated: true,
      params: IdParams,
      response: { 308: Type.Null({ description: 'Permanent redirect' }), ...errorResponses([], { authenticated: false }) },
    },
  }, async (request, reply) => {
    const q = request.url.indexOf('?');
    return reply.redirect(`/api/endpoints/${request.params.id}/edge/status${q >= 0 ? request.url.slice(q) : ''}`, 308);
  });

  fastify.delete('/endpoints/:id/association', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'Forget the Edge agent bound to an environment (its Edge ID and snapshots) so another agent can check in',
      params: IdParams,
      response: { 200: Environment, ...errorResponses([404]) },
    },
  }, async (request) => call(broker, 'state.clearAssociation', { id: request.params.id }));
};

export default edgeRoutes;
