import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { call, Settings, SettingsUpdate } from '../../../shared/contracts';
import { errorResponses } from '../../schemas';

const tags = ['settings'];

/** `/api/settings`: instance settings (administrators). */
const settingsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;

  fastify.get('/settings', {
    config: { admin: true },
    schema: { tags, summary: 'Instance settings', response: { 200: Settings, ...errorResponses() } },
  }, async () => call(broker, 'state.getSettings', {}));

  fastify.put('/settings', {
    config: { admin: true },
    schema: { tags, summary: 'Change instance settings (only the fields sent)', body: SettingsUpdate, response: { 200: Settings, ...errorResponses() } },
  }, async (request) => call(broker, 'state.updateSettings', request.body));
};

export default settingsRoutes;
