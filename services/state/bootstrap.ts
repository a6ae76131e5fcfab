import crypto from 'node:crypto';
import { DEFAULT_SETTINGS, type Group } from '../../shared/contracts';
import type { Config } from '../../shared/config';
import { generateTunnelKey, tunnelFingerprint } from '../../shared/crypto';
import { generateAgentSigningKey } from '../../shared/protocol';
import { assertSchemaSupported, runMigrations, type Store, type WriteOp } from '../../shared/store';
import { Repository } from './repository';
import { CACHED, CHECKINS, type Leading } from './actions/context';
import { UNASSIGNED_GROUP_ID } from './actions/groups-tags';

/**
 * What a replica does the moment it wins the lease, before it serves anything: refuse a store
 * from a newer schema, mint its fencing tokens, migrate, load the cache, and create what a new
 * instance needs (settings, group 1, instance id, JWT secret, tunnel key) exactly once.
 */
export async function claimLeadership(config: Config, main: Store, audit: Store, onFenced: (err: Error) => void): Promise<Leading & { migrated: { from: number; to: number } }> {
  await assertSchemaSupported(main);
  await assertSchemaSupported(audit);
  const fence = await main.claimFence();
  const auditFence = await audit.claimFence();
  const migrated = await runMigrations(main, fence);
  await runMigrations(audit, auditFence);

  const repo = new Repository(main, fence, onFenced);
  repo.defineIndex('environments', 'Name');
  repo.defineIndex('groups', 'Name');
  repo.defineIndex('tags', 'Name');
  repo.defineIndex('users', 'Username');
  repo.defineIndex('apikeys', 'digest');
  repo.defineNumbers(CHECKINS, 'at');
  await repo.load(CACHED);

  const ops: WriteOp[] = [];
  if (!repo.get('settings', 'settings')) ops.push({ op: 'put', collection: 'settings', key: 'settings', value: { ...DEFAULT_SETTINGS } });
  if (!repo.get('groups', UNASSIGNED_GROUP_ID)) {
    const group: Group = { Id: UNASSIGNED_GROUP_ID, Name: 'Unassigned', Description: 'Unassigned environments', TagIds: [], UserAccessPolicies: {}, TeamAccessPolicies: {} };
    ops.push({ op: 'put', collection: 'groups', key: UNASSIGNED_GROUP_ID, value: group });
    if (repo.size('groups') === 0) ops.push(repo.nextId('groups').op);
  }
  if (!repo.get('instance', 'instance')) ops.push({ op: 'put', collection: 'instance', key: 'instance', value: { InstanceID: crypto.randomUUID(), CreatedAt: Date.now() } });
  if (!repo.get('secrets', 'jwt')) ops.push({ op: 'put', collection: 'secrets', key: 'jwt', value: { value: crypto.randomBytes(48).toString('base64') } });
  if (!repo.get('secrets', 'tunnelPrivateKey')) ops.push({ op: 'put', collection: 'secrets', key: 'tunnelPrivateKey', value: { value: generateTunnelKey() } });
  // The key that signs every request to an agent's API (reference 3.3); agents pin it on first use.
  if (!repo.get('secrets', 'agentPrivateKey')) ops.push({ op: 'put', collection: 'secrets', key: 'agentPrivateKey', value: { value: generateAgentSigningKey().privateKeyPem } });
  if (ops.length) await repo.commit(ops);

  const fingerprint = tunnelFingerprint(repo.get<{ value: string }>('secrets', 'tunnelPrivateKey')!.value);
  return { repo, config, main, audit, fingerprint, migrated };
}
