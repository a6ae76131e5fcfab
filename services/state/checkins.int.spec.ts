import fs from 'node:fs';
import type { ServiceBroker } from 'moleculer';
import { loadConfig, type Config } from '../../shared/config';
import { call, type Environment } from '../../shared/contracts';
import { createBroker } from '../../shared/moleculer';
import { LmdbStore, type WriteOp } from '../../shared/store';
import { tempDataDir, uniqueNamespace } from '../../test/helpers/ids';
import { Repository } from './repository';
import { stateService } from '.';

const configFor = (dataDir: string): Config =>
  loadConfig({}, { dataDir, namespace: uniqueNamespace('checkins'), services: ['state'], logLevel: 'warn', publicUrl: 'https://capstan.example.com:9443' });

async function startState(config: Config): Promise<ServiceBroker> {
  const broker = createBroker(config);
  broker.createService(stateService(config));
  await broker.start();
  return broker;
}

const nowS = () => Math.floor(Date.now() / 1000);

/** Last check-ins: a key-space of their own, read by every get and list, kept across restarts. */
describe('state: last check-ins', () => {
  let dataDir: string;
  let broker: ServiceBroker;
  let edge: number[];
  let docker: number;
  beforeEach(async () => {
    dataDir = tempDataDir('capstan-checkins-');
    broker = await startState(configFor(dataDir));
    edge = [];
    for (const name of ['a', 'b', 'c']) {
      const env = await call(broker, 'state.createEnvironment', { Name: name, EndpointCreationType: 4 });
      await call(broker, 'state.bindEdgeId', { id: env.Id, edgeId: `agent-${name}`, agentVersion: '2.23.0', platform: 1 });
      edge.push(env.Id);
    }
    docker = (await call(broker, 'state.createEnvironment', { Name: 'local', EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock' })).Id;
  });
  afterEach(async () => {
    await broker.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const get = (id: number) => call(broker, 'state.getEnvironment', { id });

  it('writes `{ at }` documents only, shows them in gets and lists with the status they imply, and keeps them across a restart', async () => {
    const [a, b, c] = edge;
    const bound = (await get(c)).LastCheckInDate;
    expect(bound).toBeGreaterThanOrEqual(nowS() - 5);
    // Later than the binding's own check-in, whatever second that was.
    const fresh = nowS() + 2;
    const commit = jest.spyOn(Repository.prototype, 'commit');
    const items = [
      { id: a, at: fresh - 1 }, { id: a, at: fresh }, { id: b, at: fresh - 1 }, { id: b, at: bound - 60 }, { id: c, at: bound }, { id: docker, at: fresh }, { id: 99999, at: fresh },
    ];
    expect(await call(broker, 'state.recordCheckins', { items })).toEqual({ updated: 2 });
    const ops = commit.mock.calls.flatMap(([o]) => o as WriteOp[]);
    commit.mockRestore();
    // The environment documents are not rewritten: one small document each.
    expect(ops).toEqual([{ op: 'put', collection: 'checkins', key: a, value: { at: fresh } }, { op: 'put', collection: 'checkins', key: b, value: { at: fresh - 1 } }]);
    // Far in the future: a clock problem, not a heartbeat.
    expect(await call(broker, 'state.recordCheckins', { items: [{ id: b, at: nowS() + 3600 }] })).toEqual({ updated: 0 });

    expect(await get(a)).toMatchObject({ LastCheckInDate: fresh, Heartbeat: true, Status: 1 });
    expect(await get(c)).toMatchObject({ LastCheckInDate: bound, Heartbeat: true, Status: 1 });
    expect(await get(docker)).toMatchObject({ LastCheckInDate: 0, Status: 1 });

    const byLast = await call(broker, 'state.listEnvironments', { types: '4', sort: 'LastCheckIn', order: 'desc' });
    expect(byLast.items.map((e: Environment) => [e.Id, e.LastCheckInDate])).toEqual([[a, fresh], [b, fresh - 1], [c, bound]]);

    await broker.stop();
    const store = new LmdbStore({ path: `${dataDir}/main.lmdb` });
    await store.open();
    try {
      for (const id of edge) expect(await store.get('environments', id)).not.toHaveProperty('LastCheckInDate');
      expect(await store.get('checkins', a)).toEqual({ at: fresh });
      expect(await store.get('checkins', docker)).toBeUndefined();
    } finally {
      await store.close();
    }
    broker = await startState(configFor(dataDir));
    expect(await get(a)).toMatchObject({ LastCheckInDate: fresh, Status: 1 });
    expect((await call(broker, 'state.edgeEnvironments', { ids: [a] }))[0].LastCheckInDate).toBe(fresh);
  });

  it('shows an environment down once its last check-in is older than 2 × interval + 20 s', async () => {
    const env = await call(broker, 'state.createEnvironment', { Name: 'late', EndpointCreationType: 4, EdgeCheckinInterval: 1 });
    const late = nowS() - 23;
    await call(broker, 'state.recordCheckins', { items: [{ id: env.Id, at: late }] });
    expect(await get(env.Id)).toMatchObject({ LastCheckInDate: late, Heartbeat: false, Status: 2 });
    const down = await call(broker, 'state.listEnvironments', { status: '2' });
    expect(down.items.map((e: Environment) => e.Id)).toEqual([env.Id]);
    await call(broker, 'state.recordCheckins', { items: [{ id: env.Id, at: nowS() - 21 }] });
    expect(await get(env.Id)).toMatchObject({ Heartbeat: true, Status: 1 });
  });

  it('forgets the last check-in when the association is cleared or the environment deleted', async () => {
    const [a, b] = edge;
    await call(broker, 'state.recordCheckins', { items: [{ id: a, at: nowS() + 1 }, { id: b, at: nowS() + 1 }] });
    expect(await call(broker, 'state.clearAssociation', { id: a })).toMatchObject({ EdgeID: '', LastCheckInDate: 0, Heartbeat: false, Status: 2 });
    await call(broker, 'state.deleteEnvironment', { id: b });
    await broker.stop();
    const store = new LmdbStore({ path: `${dataDir}/main.lmdb` });
    await store.open();
    try {
      expect(await store.get('checkins', a)).toBeUndefined();
      expect(await store.get('checkins', b)).toBeUndefined();
      expect(await store.get('checkins', edge[2])).toEqual({ at: expect.any(Number) });
    } finally {
      await store.close();
    }
    broker = await startState(configFor(dataDir));
    expect((await get(a)).LastCheckInDate).toBe(0);
  });
});
