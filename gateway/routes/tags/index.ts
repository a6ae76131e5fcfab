import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { call, IdParams, Tag, TagCreate } from '../../../shared/contracts';
import { errorResponses, NoContent } from '../../schemas';

const tags = ['tags'];

/** `/api/tags`: labels on environments and groups. */
const tagRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;

  fastify.post('/tags', {
    config: { admin: true },
    schema: { tags, summary: 'Create a tag', body: TagCreate, response: { 200: Tag, ...errorResponses([409]) } },
  }, async (request) => call(broker, 'state.createTag', { Name: request.body.Name }));

  fastify.get('/tags', {
    schema: { tags, summary: 'List tags', response: { 200: Type.Array(Tag), ...errorResponses() } },
  }, async () => call(broker, 'state.listTags', {}));

  fastify.delete('/tags/:id', {
    config: { admin: true },
    schema: { tags, summary: 'Delete a tag', params: IdParams, response: { 204: NoContent, ...errorResponses([404]) } },
  }, async (request, reply) => {
    await call(broker, 'state.deleteTag', { id: request.params.id });
    return reply.code(204).send(null);
  });
};

export default tagRoutes;
