import fs from 'node:fs';
import http from 'node:http';
import {
  collectDockerSnapshot, countContainers, countStacks, healthOf, packSnapshot, snapshotHash, summarizeSnapshot, unpackSnapshot,
  type DockerSnapshot,
} from './docker';

const SOCKET = '/var/run/docker.sock';
const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' || !fs.existsSync(SOCKET) ? describe.skip : describe;

describe('Docker snapshot counts', () => {
  it('reads health from the list status, not the state', () => {
    expect(healthOf({ Status: 'Up 3 minutes (healthy)' })).toBe('healthy');
    expect(healthOf({ Status: 'Up 1 second (unhealthy)' })).toBe('unhealthy');
    expect(healthOf({ Status: 'Up 2 seconds (health: starting)' })).toBe('starting');
    expect(healthOf({ Status: 'Up 5 hours' })).toBeUndefined();
  });

  it('counts running, stopped, healthy and unhealthy containers as Portainer defines them', () => {
    const counts = countContainers([
      { State: 'running', Status: 'Up 1 minute (healthy)' },
      { State: 'running', Status: 'Up 1 minute (unhealthy)' },
      { State: 'running', Status: 'Up 1 minute (health: starting)' },
      { State: 'running', Status: 'Up 1 minute' },
      { State: 'exited', Status: 'Exited (0) 2 minutes ago' },
      { State: 'created', Status: 'Created' },
    ]);
    expect(counts).toEqual({ ContainerCount: 6, RunningContainerCount: 4, StoppedContainerCount: 1, HealthyContainerCount: 1, UnhealthyContainerCount: 1 });
  });

  it('counts stacks from swarm namespaces and compose projects, each name once', () => {
    const services = [{ Spec: { Labels: { 'com.docker.stack.namespace': 'web' } } }, { Spec: { Labels: { 'com.docker.stack.namespace': 'web' } } }];
    const containers = [{ Labels: { 'com.docker.compose.project': 'db' } }, { Labels: { 'com.docker.compose.project': 'db' } }, { Labels: {} }];
    expect(countStacks(services, containers)).toBe(2);
  });
});

describe('snapshot transport and hashing', () => {
  const snap = {
    Time: 1, DockerVersion: '27.5.1', Swarm: false, TotalCPU: 2, TotalMemory: 1, NodeCount: 0, ContainerCount: 0, RunningContainerCount: 0,
    StoppedContainerCount: 0, HealthyContainerCount: 0, UnhealthyContainerCount: 0, VolumeCount: 0, ImageCount: 0, ServiceCount: 0,
    StackCount: 0, GpuUseAll: false, GpuUseList: [], IsPodman: false,
    DockerSnapshotRaw: { Containers: [], Volumes: { Volumes: [], Warnings: null }, Networks: [], Images: [], Info: { a: 1, b: 2 }, Version: {} },
  } satisfies DockerSnapshot;

  it('packs and unpacks a snapshot unchanged and refuses what is not one', () => {
    expect(unpackSnapshot(packSnapshot(snap))).toEqual(snap);
    expect(() => unpackSnapshot('not base64 gzip')).toThrow();
    expect(() => unpackSnapshot(Buffer.from('x').toString('base64'))).toThrow();
  });

  it('hashes the canonical encoding, so key order does not matter', () => {
    const reordered = { ...snap, DockerSnapshotRaw: { ...snap.DockerSnapshotRaw, Info: { b: 2, a: 1 } } };
    expect(snapshotHash(reordered)).toBe(snapshotHash(snap));
    expect(snapshotHash({ ...snap, Time: 2 })).not.toBe(snapshotHash(snap));
  });

  it('summarises without the raw payloads', () => {
    expect(summarizeSnapshot(snap)).not.toHaveProperty('DockerSnapshotRaw');
  });
});

withDocker('collectDockerSnapshot against the local engine', () => {
  const get = (path: string) => new Promise<unknown>((resolve, reject) => {
    http.get({ socketPath: SOCKET, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ((res.statusCode ?? 0) >= 300 ? reject(new Error(`${path}: ${res.statusCode}`)) : resolve(JSON.parse(Buffer.concat(chunks).toString()))));
    }).on('error', reject);
  });

  it('takes every field from the engine and matches its own lists', async () => {
    const warnings: string[] = [];
    const s = await collectDockerSnapshot(get, (step) => warnings.push(step));
    const info = (await get('/info')) as { ServerVersion: string; NCPU: number };
    expect(s.DockerVersion).toBe(info.ServerVersion);
    expect(s.TotalCPU).toBeGreaterThan(0);
    expect(s.ContainerCount).toBe(s.DockerSnapshotRaw.Containers.length);
    expect(s.ImageCount).toBe(s.DockerSnapshotRaw.Images.length);
    expect(s.VolumeCount).toBe(s.DockerSnapshotRaw.Volumes.Volumes.length);
    expect(s.DockerSnapshotRaw.Networks.length).toBeGreaterThan(0);
    expect(s.Time).toBeGreaterThan(1_700_000_000);
    expect(warnings).toEqual([]);
  });

  it('reports a failing step and goes on; only /info is required', async () => {
    const warnings: string[] = [];
    const flaky = (path: string) => (path.startsWith('/images') ? Promise.reject(new Error('boom')) : get(path));
    const s = await collectDockerSnapshot(flaky, (step) => warnings.push(step));
    expect(warnings).toEqual(['images']);
    expect(s.ImageCount).toBe(0);
    await expect(collectDockerSnapshot((p) => (p === '/info' ? Promise.reject(new Error('down')) : get(p)))).rejects.toThrow('down');
  });
});
