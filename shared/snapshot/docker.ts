import zlib from 'node:zlib';
import stringify from 'safe-stable-stringify';
import { fnv1a32 } from '../protocol';

/** The raw Docker payloads a snapshot keeps (reference 5.1), for browsing an environment offline. */
export interface DockerSnapshotRaw {
  Containers: unknown[];
  Volumes: { Volumes: unknown[]; Warnings: unknown };
  Networks: unknown[];
  Images: unknown[];
  Info: Record<string, unknown>;
  Version: Record<string, unknown>;
}

/** Portainer's DockerSnapshot (reference 5.1), counted the way its fields say. */
export interface DockerSnapshot {
  Time: number;
  DockerVersion: string;
  Swarm: boolean;
  TotalCPU: number;
  TotalMemory: number;
  NodeCount: number;
  ContainerCount: number;
  RunningContainerCount: number;
  StoppedContainerCount: number;
  HealthyContainerCount: number;
  UnhealthyContainerCount: number;
  VolumeCount: number;
  ImageCount: number;
  ServiceCount: number;
  StackCount: number;
  GpuUseAll: boolean;
  GpuUseList: string[];
  IsPodman: boolean;
  DockerSnapshotRaw: DockerSnapshotRaw;
}

/** The snapshot without its raw payloads: what lists and environment documents carry. */
export type DockerSnapshotSummary = Omit<DockerSnapshot, 'DockerSnapshotRaw'>;

/** A GET against the engine's API answering parsed JSON; rejects on anything but 2xx. */
export type DockerGet = (path: string) => Promise<unknown>;

/** Where a sub-step of a snapshot failed (the rest goes on, as in Portainer). */
export type SnapshotWarn = (step: string, err: Error) => void;

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const asArr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
const byName = (a: Obj, b: Obj) => String(a.Name ?? '').localeCompare(String(b.Name ?? ''));

/** Health as the list API reports it, inside `Status`: "Up 3 minutes (healthy)". */
export function healthOf(container: Obj): 'healthy' | 'unhealthy' | 'starting' | undefined {
  const status = String(container.Status ?? '');
  if (/\(unhealthy\)/.test(status)) return 'unhealthy';
  if (/\(healthy\)/.test(status)) return 'healthy';
  if (/\(health: starting\)/.test(status)) return 'starting';
  return undefined;
}

/** Counts of a container list: running (healthy/unhealthy among them) and stopped. */
export function countContainers(containers: Obj[]): Pick<DockerSnapshot, 'ContainerCount' | 'RunningContainerCount' | 'StoppedContainerCount' | 'HealthyContainerCount' | 'UnhealthyContainerCount'> {
  let running = 0, stopped = 0, healthy = 0, unhealthy = 0;
  for (const c of containers) {
    const state = String(c.State ?? '');
    if (state === 'running') {
      running++;
      const health = healthOf(c);
      if (health === 'healthy') healthy++;
      else if (health === 'unhealthy') unhealthy++;
    } else if (state === 'exited' || state === 'stopped') stopped++;
  }
  return { ContainerCount: containers.length, RunningContainerCount: running, StoppedContainerCount: stopped, HealthyContainerCount: healthy, UnhealthyContainerCount: unhealthy };
}

/** Distinct stack names: swarm stack namespaces on services plus compose projects on containers. */
export function countStacks(services: Obj[], containers: Obj[]): number {
  const names = new Set<string>();
  for (const s of services) {
    const ns = asObj(asObj(s.Spec).Labels)['com.docker.stack.namespace'];
    if (typeof ns === 'string' && ns) names.add(`stack:${ns}`);
  }
  for (const c of containers) {
    const project = asObj(c.Labels)['com.docker.compose.project'];
    if (typeof project === 'string' && project) names.add(`compose:${project}`);
  }
  return names.size;
}

/** GPU requests of running containers (Docker's DeviceRequests, nvidia/gpu capability). */
function gpuUse(inspected: Obj[]): { all: boolean; list: string[] } {
  let all = false;
  const list = new Set<string>();
  for (const c of inspected) {
    for (const req of asArr(asObj(c.HostConfig).DeviceRequests)) {
      const caps = asArr(req.Capabilities).flat().map(String);
      if (req.Driver !== 'nvidia' && !caps.includes('gpu')) continue;
      if (Number(req.Count) === -1) all = true;
      for (const id of asArr(req.DeviceIDs)) list.add(String(id));
    }
  }
  return { all, list: [...list].sort() };
}

async function step<T>(name: string, warn: SnapshotWarn | undefined, fallback: T, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    warn?.(name, err as Error);
    return fallback;
  }
}

/**
 * Takes a Docker snapshot through `get` (reference 5.1): engine info and version, containers,
 * images, volumes, networks, and on a Swarm manager the nodes and services. A failing sub-step is
 * reported through `warn` and the rest goes on; only `/info` is required. Health is counted from
 * each container's health status. Lists are sorted by name so two snapshots of the same engine
 * differ only where the engine changed (small JSON patches).
 */
export async function collectDockerSnapshot(get: DockerGet, warn?: SnapshotWarn): Promise<DockerSnapshot> {
  const info = asObj(await get('/info'));
  const [version, containers, images, volumes, networks] = await Promise.all([
    step('version', warn, {}, async () => asObj(await get('/version'))),
    step('containers', warn, [] as Obj[], async () => asArr(await get('/containers/json?all=1'))),
    step('images', warn, [] as Obj[], async () => asArr(await get('/images/json'))),
    step('volumes', warn, { Volumes: [] as Obj[], Warnings: null as unknown }, async () => {
      const v = asObj(await get('/volumes'));
      return { Volumes: asArr(v.Volumes), Warnings: v.Warnings ?? null };
    }),
    step('networks', warn, [] as Obj[], async () => asArr(await get('/networks'))),
  ]);
  const swarm = asObj(info.Swarm);
  const manager = swarm.ControlAvailable === true;
  const [nodes, services] = manager
    ? await Promise.all([
      step('nodes', warn, [] as Obj[], async () => asArr(await get('/nodes'))),
      step('services', warn, [] as Obj[], async () => asArr(await get('/services'))),
    ])
    : [[], []];
  const running = containers.filter((c) => c.State === 'running');
  const inspected: Obj[] = [];
  for (let i = 0; i < running.length; i += 8) {
    const batch = await Promise.all(running.slice(i, i + 8).map((c) =>
      step('container inspect', warn, {} as Obj, async () => asObj(await get(`/containers/${encodeURIComponent(String(c.Id))}/json`)))));
    inspected.push(...batch);
  }
  const gpus = gpuUse(inspected);

  let totalCpu = Number(info.NCPU ?? 0);
  let totalMemory = Number(info.MemTotal ?? 0);
  if (manager && nodes.length) {
    totalCpu = nodes.reduce((n, node) => n + Number(asObj(asObj(node.Description).Resources).NanoCPUs ?? 0) / 1e9, 0);
    totalMemory = nodes.reduce((n, node) => n + Number(asObj(asObj(node.Description).Resources).MemoryBytes ?? 0), 0);
  }
  const components = asArr(version.Components).map((c) => String(c.Name ?? '').toLowerCase());

  for (const c of containers) asArr(c.Mounts).sort(byName);
  volumes.Volumes.sort(byName);
  networks.sort(byName);

  return {
    Time: Math.floor(Date.now() / 1000),
    DockerVersion: String(info.ServerVersion ?? ''),
    Swarm: manager,
    TotalCPU: totalCpu,
    TotalMemory: totalMemory,
    NodeCount: manager ? nodes.length : 0,
    ...countContainers(containers),
    VolumeCount: volumes.Volumes.length,
    ImageCount: images.length,
    ServiceCount: services.length,
    StackCount: countStacks(services, containers),
    GpuUseAll: gpus.all,
    GpuUseList: gpus.list,
    IsPodman: components.some((n) => n.includes('podman')),
    DockerSnapshotRaw: { Containers: containers, Volumes: volumes, Networks: networks, Images: images, Info: info, Version: version },
  };
}

/** The snapshot without its raw payloads. */
export function summarizeSnapshot(s: DockerSnapshot): DockerSnapshotSummary {
  const summary: Partial<DockerSnapshot> = { ...s };
  delete summary.DockerSnapshotRaw;
  return summary as DockerSnapshotSummary;
}

/**
 * The hash a JSON-patch refers to (reference 2.5): FNV-1a 32 of the baseline's JSON. Capstan
 * hashes the canonical encoding (keys sorted) so a baseline rebuilt by applying patches hashes the
 * same as the agent's own copy whatever order its keys were added in.
 */
export function snapshotHash(s: unknown): number {
  return fnv1a32(stringify(s) ?? 'null');
}

/**
 * A snapshot as it travels between services: gzip, then base64. Raw snapshots of hosts with
 * thousands of volumes reach megabytes of JSON; compressed they stay far below NATS's 1 MB
 * message limit.
 */
export function packSnapshot(s: DockerSnapshot): string {
  return zlib.gzipSync(JSON.stringify(s), { level: 6 }).toString('base64');
}

/** The inverse of {@link packSnapshot}; throws on anything that is not a packed snapshot object. */
export function unpackSnapshot(packed: string): DockerSnapshot {
  const value = JSON.parse(zlib.gunzipSync(Buffer.from(packed, 'base64'), { maxOutputLength: MAX_SNAPSHOT_BYTES }).toString('utf8')) as unknown;
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('a packed snapshot must hold a JSON object');
  return value as DockerSnapshot;
}

/** Largest snapshot JSON accepted, uncompressed. */
export const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024;
/** Largest packed snapshot a service call carries (base64 of gzip), under NATS's 1 MB payload. */
export const MAX_PACKED_SNAPSHOT_CHARS = 900_000;
