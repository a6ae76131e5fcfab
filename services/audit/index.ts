import type { ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';

/**
 * `audit`: The audit log in its own store, export and forwarding (filled by the audit issue).
 * It registers with the broker so deployments can already place it on its own process.
 */
export function auditService(_config: Config): ServiceSchema {
  return { name: 'audit' };
}
