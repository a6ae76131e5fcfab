import type { ServiceBroker } from 'moleculer';
import fp from 'fastify-plugin';
import type { Config } from '../../shared/config';

declare module 'fastify' {
  interface FastifyInstance {
    /** The process's Moleculer broker; routes call actions with `call(fastify.broker, ...)`. */
    broker: ServiceBroker;
    /** The validated, frozen process configuration. */
    config: Config;
  }
}

/** Options of the app plugin: everything the gateway needs from its composition root. */
export interface BrokerPluginOptions {
  broker: ServiceBroker;
  config: Config;
}

/**
 * Makes the broker and the configuration available to every plugin and route. The gateway is
 * stateless: everything it knows comes from services through this broker.
 */
export default fp<BrokerPluginOptions>(async (fastify, opts) => {
  fastify.decorate('broker', opts.broker);
  fastify.decorate('config', opts.config);
}, { name: 'capstan-broker', fastify: '5.x' });
