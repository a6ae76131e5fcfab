import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  call, Environment, EnvironmentCreate, EnvironmentQuery, EnvironmentType, EnvironmentUpdate, IdParams, SnapshotSummary,
} from '../../../shared/contracts';
import { BadRequestError } from '../../../shared/errors';
import { unpackSnapshot } from '../../../shared/snapshot';
import { EnvironmentUnreachableError } from '../docker/target';
import { assertEnvironmentAccess, listEnvironmentsFor } from '../../access';
import { principalOf } from '../../plugins/auth';
import { errorResponses, NoContent } from '../../schemas';
import { EnvironmentCreateForm, readEnvironmentForm } from './form';
import { withLiveHeartbeats } from './live-status';

const tags = ['endpoints'];

/** `/api/endpoints`: environments (Portainer "endpoints"). */
const environmentRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker, config } = fastify;

  fastify.post('/endpoints', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'Create an environment (JSON, or multipart/form-data as Portainer clients send it); Edge environments get their EdgeKey',
      body: {
        content: {
          'application/json': { schema: EnvironmentCreate },
          'multipart/form-data': { schema: EnvironmentCreateForm },
        },
      },
      response: { 200: Environment, ...errorResponses([404, 409, 413, 415]) },
    },
  }, async (request) => {
    // Typed by the JSON schema; a multipart body is read and validated here (the handler owns the stream).
    const body = request.isMultipart() ? await readEnvironmentForm(request, config.bodyLimit) : (request.body as EnvironmentCreate);
    return call(broker, 'state.createEnvironment', body);
  });

  fastify.get('/endpoints', {
    schema: {
      tags,
      summary: 'List environments, paginated; X-Total-Count is the filtered total, X-Total-Available all visible ones',
      querystring: EnvironmentQuery,
      response: {
        200: {
          ...Type.Array(Environment),
          headers: {
            'X-Total-Count': Type.Integer({ description: 'Environments matching the filters' }),
            'X-Total-Available': Type.Integer({ description: 'Environments visible to the caller' }),
          },
        },
        ...errorResponses(),
      },
    },
  }, async (request, reply) => {
    const page = await listEnvironmentsFor(broker, principalOf(request), { ...request.query });
    reply.header('X-Total-Count', page.total).header('X-Total-Available', page.totalAvailable);
    return withLiveHeartbeats(broker, page.items);
  });

  fastify.get('/endpoints/:id', {
    schema: {
      tags,
      summary: 'An environment, with its latest snapshot in full (DockerSnapshotRaw included unless excludeSnapshot=true)',
      params: IdParams,
      querystring: Type.Object({ excludeSnapshot: Type.Optional(Type.Boolean({ description: 'Leave the raw Docker payloads out' })) }),
      response: { 200: Environment, ...errorResponses([404]) },
    },
  }, async (request) => {
    const env = await call(broker, 'state.getEnvironment', { id: request.params.id });
    await assertEnvironmentAccess(broker, principalOf(request), env);
    if (!request.query.excludeSnapshot && env.Snapshots.length) {
      const { packed } = await call(broker, 'state.getSnapshot', { id: env.Id });
      if (packed) env.Snapshots = [unpackSnapshot(packed) as unknown as SnapshotSummary];
    }
    return (await withLiveHeartbeats(broker, [env]))[0];
  });

  fastify.post('/endpoints/:id/snapshot', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'Take a snapshot of an Edge environment now, through its tunnel (opened if needed); answers its summary',
      params: IdParams,
      response: { 200: SnapshotSummary, ...errorResponses([400, 404, 503, 504]) },
    },
  }, async (request) => {
    const env = await call(broker, 'state.getEnvironment', { id: request.params.id });
    if (env.Type !== EnvironmentType.EdgeAgentOnDocker) throw new BadRequestError('Snapshots through a tunnel are taken of Edge environments on Docker only', { id: env.Id, Type: env.Type });
    if (env.Edge.AsyncMode) throw new BadRequestError('An async environment sends its own snapshots on its snapshot interval', { id: env.Id });
    if (!env.EdgeID) throw new EnvironmentUnreachableError('No agent has checked in for this environment yet', { id: env.Id });
    return call(broker, 'snapshots.take', { id: env.Id }, { timeout: 120_000 });
  });

  fastify.put('/endpoints/:id', {
    config: { admin: true },
    schema: { tags, summary: 'Change an environment', params: IdParams, body: EnvironmentUpdate, response: { 200: Environment, ...errorResponses([404, 409]) } },
  }, async (request) => call(broker, 'state.updateEnvironment', { id: request.params.id, patch: request.body }));

  fastify.delete('/endpoints/:id', {
    config: { admin: true },
    schema: { tags, summary: 'Delete an environment', params: IdParams, response: { 204: NoContent, ...errorResponses([404]) } },
  }, async (request, reply) => {
    await call(broker, 'state.deleteEnvironment', { id: request.params.id });
    return reply.code(204).send(null);
  });
};

export default environmentRoutes;
