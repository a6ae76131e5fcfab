import type { Config } from '../../../shared/config';
import type { Settings } from '../../../shared/contracts';
import type { Store } from '../../../shared/store';
import type { Repository } from '../repository';

/** Collections the leader keeps in memory (everything but bulky ones like raw snapshots). */
export const CACHED = ['environments', 'groups', 'tags', 'settings', 'users', 'apikeys', 'sessions', 'secrets', 'instance'] as const;

/** What every state action handler works with while this replica leads. */
export interface Leading {
  repo: Repository;
  config: Config;
  main: Store;
  audit: Store;
  fingerprint: string;
}

export function settingsOf(repo: Repository): Settings {
  const s = repo.get<Settings>('settings', 'settings');
  if (!s) throw new Error('settings missing: bootstrap did not run');
  return s;
}

export const now = () => Math.floor(Date.now() / 1000);
export const lower = (s: string) => s.trim().toLowerCase();
