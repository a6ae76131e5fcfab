import type { Settings, SettingsUpdate } from '../../../shared/contracts';
import { settingsOf, type Leading } from './context';

export const getSettings = (l: Leading): Settings => settingsOf(l.repo);

export async function updateSettings(l: Leading, patch: SettingsUpdate): Promise<Settings> {
  return l.repo.withLock(['settings'], async () => {
    const cur = settingsOf(l.repo);
    const next: Settings = { ...cur, ...patch, Edge: { ...cur.Edge, ...(patch.Edge ?? {}) } };
    await l.repo.commit([{ op: 'put', collection: 'settings', key: 'settings', value: next }]);
    return next;
  });
}
