import { ServiceBroker, type BrokerOptions } from 'moleculer';
import type { Config } from '../config';
import { CapstanErrorRegenerator } from '../errors';
import { loggerOptions } from '../logger';
import { TypeBoxValidator } from './validator';

/**
 * One broker per process. In the embedded shape there is no transporter and every call is a
 * local function call; with CAPSTAN_TRANSPORTER set the same services talk over NATS.
 */
export function createBroker(config: Config, extra: Partial<BrokerOptions> = {}): ServiceBroker {
  return new ServiceBroker({
    namespace: config.namespace,
    nodeID: config.nodeID,
    // A URL such as nats://host:4222 selects Moleculer's NATS transporter.
    transporter: config.transporter ? (config.transporter as BrokerOptions['transporter']) : null,
    serializer: 'JSON',
    logger: {
      type: 'Pino',
      options: { level: config.logLevel === 'silent' ? 'fatal' : config.logLevel, pino: { options: loggerOptions(config.logLevel, { nodeID: config.nodeID }) } },
    } as BrokerOptions['logger'],
    requestTimeout: config.requestTimeoutMs,
    retryPolicy: { enabled: false },
    // Short heartbeats so a killed node leaves the registry within a few seconds (failover budget 5 s).
    heartbeatInterval: 1,
    heartbeatTimeout: 3,
    registry: { strategy: 'RoundRobin', preferLocal: true },
    // Signals are handled by the composition root, which stops the gateway first.
    skipProcessEventRegistration: true,
    validator: new TypeBoxValidator(),
    errorRegenerator: new CapstanErrorRegenerator(),
    ...extra,
  });
}
