import type { ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';

/**
 * `snapshots`: Environment snapshots, full and JSON-patch, and the summaries lists show (filled by the edge-agent issues).
 * It registers with the broker so deployments can already place it on its own process.
 */
export function snapshotsService(_config: Config): ServiceSchema {
  return { name: 'snapshots' };
}
