import type { ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';

/**
 * `backup`: Backup archives, restore, schedules and S3 targets (filled by the backup issue).
 * It registers with the broker so deployments can already place it on its own process.
 */
export function backupService(_config: Config): ServiceSchema {
  return { name: 'backup' };
}
