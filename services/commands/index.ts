import type { ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';

/**
 * `commands`: Async commands delivered to agents in order through BullMQ, acknowledged (filled by the async-mode issue).
 * It registers with the broker so deployments can already place it on its own process.
 */
export function commandsService(_config: Config): ServiceSchema {
  return { name: 'commands' };
}
