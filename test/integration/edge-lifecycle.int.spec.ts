import { request as undiciRequest } from 'undici';
import { docker, TEST_IMAGE as IMAGE } from '../helpers/docker';
import { EdgeTestbed } from '../helpers/edge-testbed';
import { api, insecureAgent } from '../helpers/http';
import type { TestNode } from '../helpers/node';
import { waitFor, type CapstanProcess } from '../helpers/processes';

const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;
jest.setTimeout(180_000);

const count = (p: CapstanProcess, text: string) => p.output.filter((l) => l.includes(text)).length;
/** Tunnel closes an agent logged: by itself ("closing tunnel") or by the server ("tunnel closed"). */
const closes = (p: CapstanProcess) => count(p, 'closing tunnel') + count(p, '"tunnel closed"');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * An edge environment's life around its tunnel, with real agent processes and the real engine:
 * the first snapshot at the first check-in, a snapshot before an idle tunnel closes, quiet
 * streams keeping their tunnel, and several agents sharing one environment.
 */
withDocker('edge environment lifecycle', () => {
  const bed = new EdgeTestbed(`capstan-life-${process.pid}`);
  const tag = bed.tag;
  let n: TestNode;
  let token: string;
  const startAgent = (key: string, edgeId: string) => bed.startAgent(key, edgeId);
  const createEnv = (name: string) => bed.createEnv(name, { EdgeCheckinInterval: 1 });
  const getEnv = (id: number, query = '') => bed.getEnv(id, query);

  beforeAll(async () => {
    // Short idle limit so reaping happens within the test; the reaper then runs every 1.5 s.
    await bed.start({ tunnelIdleMs: 3000 });
    ({ n, token } = bed);
  });

  afterAll(() => bed.stop());

  describe('snapshots and keep-alive', () => {
    let envId: number;
    let agent: CapstanProcess;

    it('takes a snapshot at the first check-in, health counted from the health status; lists carry the summary only', async () => {
      await docker('run', '-d', '--name', `${tag}-healthy`, '--network', 'none', '--health-cmd', 'true', '--health-interval', '1s', IMAGE, 'sleep', '600');
      await docker('run', '-d', '--name', `${tag}-sick`, '--network', 'none', '--health-cmd', 'false', '--health-interval', '1s', '--health-retries', '1', IMAGE, 'sleep', '600');
      await waitFor(async () => {
        const { stdout } = await docker('inspect', '-f', '{{.State.Health.Status}}', `${tag}-healthy`, `${tag}-sick`);
        return stdout.trim() === 'healthy\nunhealthy';
      }, 30_000, 'health checks to settle');

      const env = await createEnv('snapshot-host');
      envId = env.Id;
      agent = startAgent(env.EdgeKey, 'agent-snap');
      const full = await waitFor(async () => {
        const e = await getEnv(envId);
        return e.Snapshots?.length ? e : undefined;
      }, 30_000, 'the first snapshot');
      const snap = full.Snapshots[0];
      expect(snap.DockerVersion).toMatch(/^[0-9]+\./);
      expect(snap.HealthyContainerCount).toBeGreaterThanOrEqual(1);
      expect(snap.UnhealthyContainerCount).toBeGreaterThanOrEqual(1);
      expect(snap.RunningContainerCount).toBeGreaterThanOrEqual(snap.HealthyContainerCount + snap.UnhealthyContainerCount);
      const names = snap.DockerSnapshotRaw.Containers.map((c: { Names: string[] }) => c.Names[0]);
      expect(names).toEqual(expect.arrayContaining([`/${tag}-healthy`, `/${tag}-sick`]));
      expect(snap.DockerSnapshotRaw.Info.ServerVersion).toBe(snap.DockerVersion);

      const listed = (await api(n.url, 'GET', `/api/endpoints?search=snapshot-host`, { token })).body[0];
      expect(listed.Snapshots[0].ContainerCount).toBe(snap.ContainerCount);
      expect(listed.Snapshots[0]).not.toHaveProperty('DockerSnapshotRaw');
      expect((await getEnv(envId, '?excludeSnapshot=true')).Snapshots[0]).not.toHaveProperty('DockerSnapshotRaw');
    });

    it('takes a snapshot before closing an idle tunnel', async () => {
      const first = (await getEnv(envId)).Snapshots[0].Time as number;
      await docker('create', '--name', `${tag}-late`, '--network', 'none', IMAGE, 'true');
      const closesBefore = closes(agent);
      await waitFor(async () => closes(agent) > closesBefore, 30_000, 'the idle tunnel to be closed');
      const after = (await getEnv(envId)).Snapshots[0];
      expect(after.Time).toBeGreaterThanOrEqual(first);
      expect(after.DockerSnapshotRaw.Containers.map((c: { Names: string[] }) => c.Names[0])).toContain(`/${tag}-late`);
    });

    it('keeps the tunnel open under a quiet log stream longer than the idle limit', async () => {
      const name = `${tag}-quiet`;
      await docker('run', '-d', '--name', name, '--network', 'none', IMAGE, 'sleep', '600');
      const res = await undiciRequest(`${n.url}/api/endpoints/${envId}/docker/containers/${name}/logs?follow=1&stdout=1&stderr=1`, {
        headers: { authorization: `Bearer ${token}` }, dispatcher: insecureAgent, bodyTimeout: 0,
      });
      expect(res.statusCode).toBe(200);
      let received = '';
      res.body.on('data', (c: Buffer) => (received += c.toString('latin1')));
      const closesBefore = closes(agent);
      await sleep(8000); // more than twice the 3 s idle limit, nothing written
      expect(closes(agent)).toBe(closesBefore);
      await docker('exec', name, 'sh', '-c', 'echo still-streaming > /proc/1/fd/1');
      await waitFor(async () => received.includes('still-streaming'), 10_000, 'the late log line through the same stream');
      res.body.destroy();
      // Once the stream is gone the tunnel idles out as usual.
      await waitFor(async () => closes(agent) > closesBefore, 30_000, 'the tunnel to close after the stream ended');
    });

    it('takes a snapshot on demand and refuses environments it cannot snapshot', async () => {
      const res = await api(n.url, 'POST', `/api/endpoints/${envId}/snapshot`, { token });
      expect(res.status).toBe(200);
      expect(res.body.ContainerCount).toBeGreaterThanOrEqual(4);
      expect(res.body).not.toHaveProperty('DockerSnapshotRaw');
      const unbound = await createEnv('never-checked-in');
      expect((await api(n.url, 'POST', `/api/endpoints/${unbound.Id}/snapshot`, { token })).status).toBe(503);
      expect((await api(n.url, 'POST', '/api/endpoints/999999/snapshot', { token })).status).toBe(404);
    });
  });

  describe('several agents, one environment', () => {
    it('holds one tunnel at a time; another agent takes over within a check-in interval when the holder dies', async () => {
      const env = await createEnv('swarm-like');
      const [a, b] = [startAgent(env.EdgeKey, 'shared-edge-id'), startAgent(env.EdgeKey, 'shared-edge-id')];
      await waitFor(async () => (await getEnv(env.Id)).EdgeID === 'shared-edge-id', 20_000, 'the agents to check in');
      // The first snapshot opened the tunnel already; a Docker call goes through it.
      const first = await api(n.url, 'GET', `/api/endpoints/${env.Id}/docker/version`, { token });
      expect(first.status).toBe(200);
      await sleep(2500); // both agents have seen the REQUIRED reply by now
      const opened = (p: CapstanProcess) => count(p, 'tunnel open');
      expect(opened(a) + opened(b)).toBe(1);
      const [holder, other] = opened(a) === 1 ? [a, b] : [b, a];

      holder.child.kill('SIGKILL');
      await holder.exited;
      const t0 = Date.now();
      await waitFor(async () => (await api(n.url, 'GET', `/api/endpoints/${env.Id}/docker/version`, { token })).status === 200, 15_000, 'a Docker call through the other agent');
      const tookMs = Date.now() - t0;
      process.stdout.write(`tunnel taken over by the second agent: Docker calls answered again ${tookMs} ms after the holder was killed (check-in interval 1 s)\n`);
      expect(opened(other)).toBe(1);
      expect(tookMs).toBeLessThan(3000);
    });
  });
});
