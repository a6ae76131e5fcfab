import zlib from 'node:zlib';
import { compare } from 'fast-json-patch';
import { snapshotHash } from '../../shared/snapshot';
import { docker, TEST_IMAGE as IMAGE } from '../helpers/docker';
import { EdgeTestbed } from '../helpers/edge-testbed';
import { api } from '../helpers/http';
import type { TestNode } from '../helpers/node';
import { waitFor } from '../helpers/processes';

const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;
jest.setTimeout(180_000);

const AGENT_HEADERS = { 'X-PortainerAgent-EdgeID': 'raw-async', 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1' };

/**
 * Async mode on the server: the one exchange route, snapshots (full, JSON patch with the
 * baseline's hash, a full one asked for on mismatch), reads of an async environment served from
 * its snapshot, no tunnel ever; and a real async agent process against the real engine.
 */
withDocker('edge async mode', () => {
  const bed = new EdgeTestbed(`capstan-async-${process.pid}`);
  const tag = bed.tag;
  let n: TestNode;
  let token: string;
  const createEnv = (name: string, extra: Record<string, unknown> = {}) => bed.createEnv(name, extra);
  const exchange = (body: unknown, gzip = false, headers: Record<string, string> = AGENT_HEADERS) => {
    const raw = Buffer.from(JSON.stringify(body));
    return api(n.url, 'POST', '/api/endpoints/edge/async', {
      rawBody: gzip ? zlib.gzipSync(raw, { level: 9 }) : raw,
      headers: { ...headers, 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
    });
  };

  beforeAll(async () => {
    await bed.start();
    ({ n, token } = bed);
  });

  afterAll(() => bed.stop());

  it('answers the exchange with the timers in nanoseconds, stores full snapshots and patches, and asks for a full one on a hash mismatch', async () => {
    const env = await createEnv('async-raw', { EdgeAsync: true, EdgePingInterval: 7, EdgeCommandInterval: 9 });
    expect(env.Edge.AsyncMode).toBe(true);
    const base = {
      Time: 1_700_000_000, DockerVersion: '27.0.0', Swarm: false, TotalCPU: 2, TotalMemory: 1024, NodeCount: 0, ContainerCount: 1,
      RunningContainerCount: 1, StoppedContainerCount: 0, HealthyContainerCount: 0, UnhealthyContainerCount: 0, VolumeCount: 0, ImageCount: 0,
      ServiceCount: 0, StackCount: 0, GpuUseAll: false, GpuUseList: [], IsPodman: false,
      DockerSnapshotRaw: {
        Containers: [{ Id: 'a'.repeat(64), Names: ['/web'], State: 'running', Status: 'Up 1 minute' }],
        Volumes: { Volumes: [], Warnings: null }, Networks: [{ Name: 'bridge' }], Images: [], Info: { ServerVersion: '27.0.0' }, Version: {},
      },
    };
    const first = await exchange({ endpointId: env.Id, commandTimestamp: '2000-01-01T00:00:00Z', snapshot: { docker: base } }, true);
    expect(`${first.status} ${first.text}`).toMatch(/^200 /);
    expect(first.body).toMatchObject({ pingInterval: 7e9, commandInterval: 9e9, snapshotInterval: 300e9, endpointID: env.Id, commands: [], needFullSnapshot: false });
    let stored = (await api(n.url, "GET", `/api/endpoints/${env.Id}`, { token })).body;
    expect(stored.EdgeID).toBe('raw-async');
    expect(stored.Snapshots[0].ContainerCount).toBe(1);

    // A patch from the stored snapshot: applied.
    const next = structuredClone(base);
    next.Time += 60;
    next.DockerSnapshotRaw.Containers.push({ Id: 'b'.repeat(64), Names: ['/db'], State: 'exited', Status: 'Exited (0)' });
    next.ContainerCount = 2;
    next.StoppedContainerCount = 1;
    const patched = await exchange({ endpointId: env.Id, snapshot: { dockerPatch: compare(base, next), dockerHash: snapshotHash(base) } }, true);
    expect(patched.body.needFullSnapshot).toBe(false);
    stored = (await api(n.url, 'GET', `/api/endpoints/${env.Id}`, { token })).body;
    expect(stored.Snapshots[0]).toMatchObject({ ContainerCount: 2, StoppedContainerCount: 1, Time: next.Time });
    expect(stored.Snapshots[0].DockerSnapshotRaw.Containers).toHaveLength(2);

    // The same patch again names a baseline the server no longer has: a full snapshot is asked for, nothing changes.
    const stale = await exchange({ endpointId: env.Id, snapshot: { dockerPatch: compare(base, next), dockerHash: snapshotHash(base) } }, true);
    expect(stale.body.needFullSnapshot).toBe(true);
    // A patch that does not apply to the baseline it names is refused the same way.
    const broken = await exchange({ endpointId: env.Id, snapshot: { dockerPatch: [{ op: 'remove', path: '/DockerSnapshotRaw/Containers/7' }], dockerHash: snapshotHash(next) } }, true);
    expect(broken.body.needFullSnapshot).toBe(true);
    expect((await api(n.url, 'GET', `/api/endpoints/${env.Id}`, { token })).body.Snapshots[0].Time).toBe(next.Time);

    // Reads come from the snapshot, marked with its time; anything else is refused (no tunnel for async).
    const list = await api(n.url, 'GET', `/api/endpoints/${env.Id}/docker/containers/json`, { token });
    expect(list.status).toBe(200);
    expect(list.headers['x-capstan-snapshot-time']).toBe(String(next.Time));
    expect(list.body.map((c: { Names: string[] }) => c.Names[0])).toEqual(['/web']);
    expect((await api(n.url, 'GET', `/api/endpoints/${env.Id}/docker/v1.41/containers/json?all=1`, { token })).body).toHaveLength(2);
    expect((await api(n.url, 'GET', `/api/endpoints/${env.Id}/docker/networks`, { token })).body).toEqual([{ Name: 'bridge' }]);
    const live = await api(n.url, 'POST', `/api/endpoints/${env.Id}/docker/containers/web/stop`, { token });
    expect(live.status).toBe(409);
    expect(live.body.message).toMatch(/async/);
    expect((await api(n.url, 'POST', `/api/endpoints/${env.Id}/snapshot`, { token })).status).toBe(400);
  });

  it('refuses bad exchanges with a clear 4xx', async () => {
    const env = await createEnv('async-bad', { EdgeAsync: true });
    expect((await exchange({ endpointId: env.Id })).status).toBe(200);
    expect((await exchange({ endpointId: env.Id }, false, { ...AGENT_HEADERS, 'X-PortainerAgent-EdgeID': 'intruder' })).status).toBe(403);
    expect((await exchange({})).status).toBe(400);
    expect((await exchange({ endpointId: 999999 })).status).toBe(404);
    expect((await exchange({ endpointId: env.Id, snapshot: { docker: { Time: 'yesterday' } } })).status).toBe(400);
    const notGzip = await api(n.url, 'POST', '/api/endpoints/edge/async', {
      rawBody: 'not gzip at all', headers: { ...AGENT_HEADERS, 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expect(notGzip.status).toBeGreaterThanOrEqual(400);
    expect(notGzip.status).toBeLessThan(500);
    const brotli = await api(n.url, 'POST', '/api/endpoints/edge/async', { rawBody: '{}', headers: { ...AGENT_HEADERS, 'content-type': 'application/json', 'content-encoding': 'br' } });
    expect(brotli.status).toBe(415);
  });

  it('runs a real async agent: first full snapshot at enrolment, changes arrive as patches, the environment becomes async on first use', async () => {
    // Created as a standard environment: the agent's first async exchange makes it async.
    const env = await createEnv('async-host', { EdgePingInterval: 1, EdgeSnapshotInterval: 1, EdgeCommandInterval: 1 });
    expect(env.Edge.AsyncMode).toBe(false);
    const agent = bed.startAgent(env.EdgeKey, 'real-async', { EDGE_ASYNC: '1', LOG_LEVEL: 'debug' });
    const first = await waitFor(async () => {
      const e = (await api(n.url, 'GET', `/api/endpoints/${env.Id}`, { token })).body;
      return e.Snapshots?.length ? e : undefined;
    }, 30_000, 'the first snapshot');
    expect(first.Edge.AsyncMode).toBe(true);
    expect(first.EdgeID).toBe('real-async');

    await docker('create', '--name', `${tag}-new`, '--network', 'none', IMAGE, 'true');
    await waitFor(async () => {
      const res = await api(n.url, 'GET', `/api/endpoints/${env.Id}/docker/containers/json?all=1`, { token });
      return res.status === 200 && res.body.some((c: { Names: string[] }) => c.Names[0] === `/${tag}-new`);
    }, 30_000, 'the new container to show in the async snapshot');
    // No tunnel was ever asked for.
    expect(agent.output.join('\n')).not.toMatch(/tunnel open/);
  });
});
