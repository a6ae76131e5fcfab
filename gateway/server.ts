import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { ServiceBroker } from 'moleculer';
import type { Config } from '../shared/config';
import { loggerOptions } from '../shared/logger';
import capstanApp from './app';
import { sendError } from './plugins/errors';
import { loadTlsMaterial, tlsServerOptions } from './plugins/tls';
import { typeboxValidatorCompiler } from './validation';

/** What the composition root hands the gateway. */
export interface GatewayOptions {
  broker: ServiceBroker;
  config: Config;
}

/** A listening gateway. */
export interface Gateway {
  app: FastifyInstance;
  /** The port actually bound (CAPSTAN_HTTPS_PORT=0 picks a free one). */
  port: number;
  /** Stops accepting connections and waits for in-flight requests. */
  close(): Promise<void>;
}

/** Credentials in URLs (`?x-api-key=`, websocket `?token=`) never reach the log. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:x-api-key|token|apikey)=)[^&]*/gi, '$1[redacted]');
}

/**
 * Socket timeouts. requestTimeout bounds receiving one whole request (uploads included);
 * keep-alive outlives common load-balancer idle timeouts (60 s) so they close first;
 * headersTimeout bounds slow-header clients.
 */
const TIMEOUTS = { requestTimeout: 120_000, keepAliveTimeout: 72_000, headersTimeout: 30_000 };

/** Builds the HTTPS fastify instance with the app registered, without listening. */
export async function buildGateway({ broker, config }: GatewayOptions): Promise<FastifyInstance> {
  const tls = await loadTlsMaterial(config);
  const logger: FastifyServerOptions['logger'] = {
    ...loggerOptions(config.logLevel, { nodeID: config.nodeID, service: 'gateway' }),
    serializers: {
      req: (req: { method: string; url: string; ip?: string; socket?: { remotePort?: number } }) => ({
        method: req.method, url: redactUrl(req.url), remoteAddress: req.ip, remotePort: req.socket?.remotePort,
      }),
    },
  };
  // HTTPS/1.1 only: HTTP/2 stays off (the Docker API proxy and websocket upgrades need HTTP/1.1).
  const app = Fastify({
    https: tlsServerOptions(tls),
    logger,
    bodyLimit: config.bodyLimit,
    requestTimeout: TIMEOUTS.requestTimeout,
    keepAliveTimeout: TIMEOUTS.keepAliveTimeout,
    genReqId: () => crypto.randomUUID(),
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
    frameworkErrors: (err, request, reply) => {
      reply.header('x-content-type-options', 'nosniff');
      sendError(request, reply, err);
    },
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = TIMEOUTS.headersTimeout;
  app.setValidatorCompiler(typeboxValidatorCompiler);
  // Not encapsulated (fastify/demo): the app's decorators, such as routeTable, live on the root instance.
  await app.register(fp(capstanApp, { name: 'capstan-app' }), { broker, config });
  if (tls.source === 'generated') {
    app.log.info({ certFile: tls.certFile }, 'generated a self-signed TLS certificate; set CAPSTAN_TLS_CERT/CAPSTAN_TLS_KEY to use your own');
  }
  return app;
}

/** Starts the HTTPS API on config.host:config.httpsPort. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const app = await buildGateway(opts);
  try {
    // A fleet reconnecting at once (a gateway restart) opens thousands of connections in a few
    // seconds: a deep accept queue keeps the kernel from dropping them (capped by net.core.somaxconn).
    await app.listen({ host: opts.config.host, port: opts.config.httpsPort, backlog: 4096 });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw new Error(`gateway cannot listen on ${opts.config.host}:${opts.config.httpsPort}: ${(err as Error).message}`, { cause: err });
  }
  const { port } = app.server.address() as AddressInfo;
  return {
    app,
    port,
    async close() {
      await app.close();
    },
  };
}
