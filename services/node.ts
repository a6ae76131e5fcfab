import type { ServiceBroker, ServiceSchema } from 'moleculer';
import type { Config, ServiceName } from '../shared/config';
import { createBroker } from '../shared/moleculer';
import { startGateway, type Gateway } from '../gateway';
import { stateService } from './state';
import { rbacService } from './rbac';
import { pollingService } from './polling';
import { tunnelService } from './tunnel';
import { snapshotsService } from './snapshots';
import { commandsService } from './commands';
import { auditService } from './audit';
import { backupService } from './backup';

const factories: Record<Exclude<ServiceName, 'gateway'>, (c: Config) => ServiceSchema> = {
  state: stateService, rbac: rbacService, polling: pollingService, tunnel: tunnelService,
  snapshots: snapshotsService, commands: commandsService, audit: auditService, backup: backupService,
};

/** A running Capstan process: its broker, its gateway when it runs one, and a clean stop. */
export interface CapstanNode {
  broker: ServiceBroker;
  gateway?: Gateway;
  stop(): Promise<void>;
}

/**
 * Starts the services named in `config.services` on one broker, then the gateway if asked.
 * The embedded default runs them all here; the distributed shape runs subsets per process.
 */
export async function startNode(config: Config): Promise<CapstanNode> {
  const broker = createBroker(config);
  for (const name of config.services) {
    if (name !== 'gateway') broker.createService(factories[name](config));
  }
  await broker.start();
  let gateway: Gateway | undefined;
  try {
    if (config.services.includes('gateway')) gateway = await startGateway({ broker, config });
  } catch (err) {
    await broker.stop();
    throw err;
  }
  return {
    broker,
    gateway,
    async stop() {
      await gateway?.close();
      await broker.stop();
    },
  };
}
