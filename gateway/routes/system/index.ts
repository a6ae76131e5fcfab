import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { call, SystemStatus } from '../../../shared/contracts';
import { errorResponses } from '../../schemas';

/** `/api/system/*`: instance status, public (Portainer clients probe it before signing in). */
const systemRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const schema = {
    tags: ['system'],
    summary: 'Version and instance id',
    response: { 200: SystemStatus, ...errorResponses([], { authenticated: false }) },
  };
  const handler = () => call(fastify.broker, 'state.instance', {});

  fastify.get('/system/status', { config: { public: true }, schema }, handler);
  fastify.get('/status', { config: { public: true }, schema: { ...schema, summary: 'Version and instance id (deprecated alias of /api/system/status)', deprecated: true } }, handler);
};

export default systemRoutes;
