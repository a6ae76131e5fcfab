import type { ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';

/**
 * `polling`: Edge check-ins: Edge ID binding, heartbeats in memory, IDLE/REQUIRED, ETag/304, async exchanges (filled by the edge-agent issues).
 * It registers with the broker so deployments can already place it on its own process.
 */
export function pollingService(_config: Config): ServiceSchema {
  return { name: 'polling' };
}
