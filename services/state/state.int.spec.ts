import fs from 'node:fs';
import type { ServiceBroker } from 'moleculer';
import { loadConfig, type Config } from '../../shared/config';
import { call, type Environment } from '../../shared/contracts';
import { decodeEdgeKey } from '../../shared/crypto';
import { createBroker } from '../../shared/moleculer';
import { LmdbStore, SCHEMA_VERSION } from '../../shared/store';
import { tempDataDir, uniqueNamespace } from '../../test/helpers/ids';
import { stateService } from '.';

function configFor(dataDir: string): Config {
  return loadConfig({}, { dataDir, namespace: uniqueNamespace('state'), services: ['state'], logLevel: 'warn', tunnelPort: 8000 });
}

async function startState(config: Config): Promise<ServiceBroker> {
  const broker = createBroker(config);
  broker.createService(stateService(config));
  await broker.start();
  return broker;
}

describe('state service (embedded store, local election)', () => {
  let dataDir: string;
  let broker: ServiceBroker;
  beforeEach(async () => {
    dataDir = tempDataDir();
    broker = await startState(configFor(dataDir));
  });
  afterEach(async () => {
    await broker.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('bootstraps group 1, default settings and leads at once', async () => {
    const leader = await call(broker, 'state.leader', {});
    expect(leader.isLeader).toBe(true);
    expect(leader.fence).toBeGreaterThan(0);
    const groups = await call(broker, 'state.listGroups', {});
    expect(groups).toEqual([expect.objectContaining({ Id: 1, Name: 'Unassigned' })]);
    expect((await call(broker, 'state.getSettings', {})).EdgeAgentCheckinInterval).toBe(5);
  });

  it('creates an Edge environment with a Portainer EdgeKey and refuses a duplicate name', async () => {
    const env = await call(broker, 'state.createEnvironment', { Name: 'edge-1', EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' });
    expect(env.Type).toBe(4);
    const key = decodeEdgeKey(env.EdgeKey);
    const { fingerprint } = await call(broker, 'state.tunnelFingerprint', {});
    expect(key).toEqual({ apiUrl: 'https://capstan.example.com:9443', tunnelAddr: 'capstan.example.com:8000', fingerprint, endpointId: env.Id });
    expect(fingerprint).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    await expect(call(broker, 'state.createEnvironment', { Name: 'EDGE-1', EndpointCreationType: 4, URL: 'https://x.example.com' }))
      .rejects.toMatchObject({ code: 409 });
    await expect(call(broker, 'state.createEnvironment', { Name: 'e2', EndpointCreationType: 4, URL: 'https://localhost:9443' }))
      .rejects.toMatchObject({ code: 400 });
  });

  it('creates concurrently without losing or duplicating anything, and lists with search, sort and paging', async () => {
    const made = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      call(broker, 'state.createEnvironment', { Name: `env-${String(i).padStart(3, '0')}`, EndpointCreationType: 4, URL: 'https://10.0.0.1:9443' })));
    expect(new Set(made.map((e) => e.Id)).size).toBe(200);
    const page = await call(broker, 'state.listEnvironments', { search: 'env-01', sort: 'Name', order: 'desc', start: 2, limit: 3 });
    expect(page.total).toBe(10);
    expect(page.totalAvailable).toBe(200);
    expect(page.items.map((e: Environment) => e.Name)).toEqual(['env-017', 'env-016', 'env-015']);
  });

  it('lists for a standard user only environments with a policy for them on the environment or its group', async () => {
    const group = await call(broker, 'state.createGroup', { Name: 'team-a' });
    await call(broker, 'state.updateGroup', { id: group.Id, patch: { UserAccessPolicies: { '7': { RoleId: 0 } } } });
    const direct = await call(broker, 'state.createEnvironment', { Name: 'direct', EndpointCreationType: 1, URL: 'tcp://10.0.0.1:2375' });
    await call(broker, 'state.updateEnvironment', { id: direct.Id, patch: { UserAccessPolicies: { '7': { RoleId: 0 } } } });
    const viaGroup = await call(broker, 'state.createEnvironment', { Name: 'via-group', EndpointCreationType: 1, URL: 'tcp://10.0.0.2:2375', GroupID: group.Id });
    await call(broker, 'state.createEnvironment', { Name: 'hidden', EndpointCreationType: 1, URL: 'tcp://10.0.0.3:2375' });
    const mine = await call(broker, 'state.listEnvironments', { visibleToUserId: 7, sort: 'Name' });
    expect(mine.items.map((e: Environment) => e.Id)).toEqual([direct.Id, viaGroup.Id]);
    expect(mine.totalAvailable).toBe(2);
    expect((await call(broker, 'state.listEnvironments', { visibleToUserId: 8 })).total).toBe(0);
    expect((await call(broker, 'state.listEnvironments', {})).total).toBe(3);
  });

  it('keeps everything across a restart and resumes ids after the highest one', async () => {
    const tag = await call(broker, 'state.createTag', { Name: 'prod' });
    const a = await call(broker, 'state.createEnvironment', { Name: 'a', EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock', TagIds: [tag.ID] });
    const b = await call(broker, 'state.createEnvironment', { Name: 'b', EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock' });
    await call(broker, 'state.deleteEnvironment', { id: b.Id });
    const fpBefore = (await call(broker, 'state.tunnelFingerprint', {})).fingerprint;
    await broker.stop();
    broker = await startState(configFor(dataDir));
    expect(await call(broker, 'state.getEnvironment', { id: a.Id })).toMatchObject({ Name: 'a', TagIds: [tag.ID] });
    expect((await call(broker, 'state.tunnelFingerprint', {})).fingerprint).toBe(fpBefore);
    const c = await call(broker, 'state.createEnvironment', { Name: 'c', EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock' });
    expect(c.Id).toBe(b.Id + 1);
    const other = await call(broker, 'state.createTag', { Name: 'edge' });
    // Portainer clients send `TagIDs` on update.
    expect((await call(broker, 'state.updateEnvironment', { id: c.Id, patch: { TagIDs: [other.ID] } })).TagIds).toEqual([other.ID]);
    await expect(call(broker, 'state.createTag', { Name: 'bad\u0000name' })).rejects.toMatchObject({ code: 422 });
    await call(broker, 'state.deleteTag', { id: other.ID });
    const tags = await call(broker, 'state.listTags', {});
    expect(tags).toEqual([{ ID: tag.ID, Name: 'prod', Endpoints: { [String(a.Id)]: true }, EndpointGroups: {} }]);
  });

  it('refuses to start on a store written by a newer schema version', async () => {
    await broker.stop();
    const store = new LmdbStore({ path: `${dataDir}/main.lmdb` });
    await store.open();
    const fence = await store.claimFence();
    await store.commit(fence, [{ op: 'put', collection: '_meta', key: 'schemaVersion', value: { value: SCHEMA_VERSION + 1 } }]);
    await store.close();
    const next = createBroker(configFor(dataDir));
    next.createService(stateService(configFor(dataDir)));
    await expect(next.start()).rejects.toThrow(new RegExp(`schema version ${SCHEMA_VERSION + 1}`));
    await next.stop().catch(() => undefined);
    broker = await startState(configFor(tempDataDir()));
  });
});
