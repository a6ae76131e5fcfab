import type { FastifyInstance, RouteOptions } from 'fastify';
import multipart from '@fastify/multipart';
import brokerPlugin, { type BrokerPluginOptions } from './plugins/broker';
import errorsPlugin from './plugins/errors';
import { securityHeaders } from './plugins/tls';
import rateLimitPlugin from './plugins/rate-limit';
import openapiPlugin from './plugins/openapi';
import authPlugin from './plugins/auth';
import authRoutes from './routes/auth';
import userRoutes from './routes/users';
import environmentRoutes from './routes/endpoints';
import groupRoutes from './routes/endpoint-groups';
import tagRoutes from './routes/tags';
import settingsRoutes from './routes/settings';
import systemRoutes from './routes/system';
import dockerRoutes from './routes/docker';
import edgeRoutes from './routes/edge';
import commandRoutes from './routes/commands';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route the app serves (HEAD included), for audits such as "all non-public routes need credentials". */
    routeTable: RouteEntry[];
  }
}

/** One served route and whether it is reachable without credentials. */
export interface RouteEntry {
  method: string;
  url: string;
  readonly public: boolean;
}

function routeEntry(route: RouteOptions, method: string): RouteEntry {
  // Read lazily: a later onRoute hook (the docs plugin) may still mark the route public.
  return { method, url: route.url, get public() { return route.config?.public === true; } };
}

/** Every route area, each its own encapsulated plugin under `/api`. */
export const ROUTE_AREAS = [authRoutes, userRoutes, environmentRoutes, groupRoutes, tagRoutes, settingsRoutes, systemRoutes, dockerRoutes, edgeRoutes, commandRoutes];

/**
 * The gateway as a plugin (fastify/demo's shape), independent of how it is served:
 * configuration and broker, then the error handling every later route inherits, then
 * third-party plugins, then authentication, then one plugin per route area.
 */
export default async function capstanApp(fastify: FastifyInstance, opts: BrokerPluginOptions): Promise<void> {
  await fastify.register(brokerPlugin, opts);
  const routeTable: RouteEntry[] = [];
  fastify.decorate('routeTable', routeTable);
  fastify.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routeTable.push(routeEntry(route, method));
  });
  await fastify.register(errorsPlugin);
  await fastify.register(securityHeaders);

  await fastify.register(multipart, {
    // Forms are small (environment fields); uploaded TLS files are bounded by the body limit.
    limits: { fieldNameSize: 200, fieldSize: 64 * 1024, fields: 50, fileSize: opts.config.bodyLimit, files: 5, parts: 60, headerPairs: 100 },
    throwFileSizeLimit: true,
  });
  await fastify.register(rateLimitPlugin);
  await fastify.register(openapiPlugin);

  await fastify.register(authPlugin);

  for (const area of ROUTE_AREAS) await fastify.register(area, { prefix: '/api' });
}
