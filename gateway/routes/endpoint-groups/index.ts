import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { call, Group, GroupCreate, GroupUpdate, IdParams } from '../../../shared/contracts';
import { assertGroupAccess, visibleGroups } from '../../access';
import { principalOf } from '../../plugins/auth';
import { errorResponses, NoContent } from '../../schemas';

const tags = ['endpoint_groups'];

/** `/api/endpoint_groups`: environment groups; group 1 "Unassigned" always exists. */
const groupRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;

  fastify.post('/endpoint_groups', {
    config: { admin: true },
    schema: { tags, summary: 'Create a group', body: GroupCreate, response: { 200: Group, ...errorResponses([404, 409]) } },
  }, async (request) => call(broker, 'state.createGroup', request.body));

  fastify.get('/endpoint_groups', {
    schema: { tags, summary: 'List groups (standard users: those they have access to)', response: { 200: Type.Array(Group), ...errorResponses() } },
  }, async (request) => visibleGroups(principalOf(request), await call(broker, 'state.listGroups', {})));

  fastify.get('/endpoint_groups/:id', {
    schema: { tags, summary: 'A group', params: IdParams, response: { 200: Group, ...errorResponses([404]) } },
  }, async (request) => {
    const group = await call(broker, 'state.getGroup', { id: request.params.id });
    assertGroupAccess(principalOf(request), group);
    return group;
  });

  fastify.put('/endpoint_groups/:id', {
    config: { admin: true },
    schema: { tags, summary: 'Change a group', params: IdParams, body: GroupUpdate, response: { 200: Group, ...errorResponses([404, 409]) } },
  }, async (request) => call(broker, 'state.updateGroup', { id: request.params.id, patch: request.body }));

  fastify.delete('/endpoint_groups/:id', {
    config: { admin: true },
    schema: { tags, summary: 'Delete a group (its environments move to group 1)', params: IdParams, response: { 204: NoContent, ...errorResponses([404, 409]) } },
  }, async (request, reply) => {
    await call(broker, 'state.deleteGroup', { id: request.params.id });
    return reply.code(204).send(null);
  });
};

export default groupRoutes;
