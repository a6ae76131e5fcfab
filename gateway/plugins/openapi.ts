import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { CAPSTAN_VERSION } from '../../shared/contracts';

/** Where the browsable API documentation lives; the JSON document is at `${DOCS_PREFIX}/json`. */
export const DOCS_PREFIX = '/api/docs';

/**
 * The OpenAPI 3 document, generated from the TypeBox schemas of the routes (never hand-written),
 * and Swagger UI to browse it. Both are public. Registered before the routes so it sees them all.
 */
export default fp(async (fastify) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Capstan',
        version: CAPSTAN_VERSION,
        description: 'Capstan control plane API (Portainer-compatible). Authenticate with an API key (`X-API-Key`) or a JWT from `POST /api/auth` (`Authorization: Bearer`).',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          jwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        },
      },
      security: [{ apiKey: [] }, { jwt: [] }],
    },
    // Named components from the contracts' $id (Environment, User, ...) instead of def-0, def-1.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transform: ({ schema, url, route }) => {
      const out = { ...(schema ?? {}) } as Record<string, unknown>;
      if (route.config?.public) out.security = [];
      return { schema: out, url };
    },
  });

  // Encapsulated: the hook below only marks the documentation routes public.
  await fastify.register(async (docs) => {
    docs.addHook('onRoute', (route) => {
      route.config = { ...route.config, public: true };
    });
    await docs.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: true });
  });
}, { name: 'capstan-openapi', fastify: '5.x' });
