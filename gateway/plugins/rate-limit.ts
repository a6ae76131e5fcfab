import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import { Redis } from 'ioredis';
import { TooManyRequestsError } from '../../shared/errors';

declare module 'fastify' {
  interface FastifyInstance {
    /** Route `config.rateLimit` for sign-in style routes: CAPSTAN_AUTH_RATE_LIMIT per window per client address. */
    signInRateLimit: RateLimitOptions;
  }
}

/**
 * Sign-in rate limiting (Portainer limits `/auth`, token creation and password changes per IP).
 * Not global: only routes that put `fastify.signInRateLimit` in their config are limited. With a
 * transporter (several gateways) the counters live in Redis so every replica sees every attempt.
 */
export default fp(async (fastify) => {
  const { config } = fastify;
  let redis: Redis | undefined;
  if (config.transporter) {
    redis = new Redis(config.redisUrl, { connectTimeout: 2000, maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
    redis.on('error', (err) => fastify.log.warn({ err: err.message }, 'rate-limit redis error'));
    fastify.addHook('onClose', async () => {
      await redis?.quit().catch(() => redis?.disconnect());
    });
  }
  await fastify.register(rateLimit, {
    global: false,
    ...(redis ? { redis, nameSpace: `${config.namespace}:rate-limit:` } : {}),
    // Redis unreachable: keep sign-in available (each attempt still needs the password) and say so.
    skipOnError: true,
    keyGenerator: (request: FastifyRequest) => request.ip,
    errorResponseBuilder: (_request, context) => Object.assign(
      new TooManyRequestsError('Too many requests, retry later', `Rate limit of ${context.max} attempts exceeded; retry in ${context.after}`),
      { statusCode: context.statusCode },
    ),
  });
  fastify.decorate('signInRateLimit', { max: config.authRateLimit, timeWindow: config.authRateWindowMs } satisfies RateLimitOptions);
}, { name: 'capstan-rate-limit', fastify: '5.x', dependencies: ['capstan-broker'] });
