import type { Config } from '../../../shared/config';
import type { Environment, Settings } from '../../../shared/contracts';
import type { Store } from '../../../shared/store';
import type { Repository } from '../repository';

/**
 * Last check-ins, `id → { at }` (unix seconds), apart from the environment documents: a heartbeat
 * flush writes these small documents only, and never copies or re-encodes an environment.
 */
export const CHECKINS = 'checkins';

/** Collections the leader keeps in memory (everything but bulky ones like raw snapshots). */
export const CACHED = ['environments', 'groups', 'tags', 'settings', 'users', 'apikeys', 'sessions', 'secrets', 'instance', CHECKINS] as const;

/** An environment as stored: its last check-in lives in {@link CHECKINS}; reads add it. */
export type StoredEnvironment = Omit<Environment, 'LastCheckInDate'>;

/** The last check-in of environment `id` (unix seconds; 0: none yet). */
export function lastCheckIn(repo: Repository, id: number): number {
  return repo.number(CHECKINS, id) ?? 0;
}

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
