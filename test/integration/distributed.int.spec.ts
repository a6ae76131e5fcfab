import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../shared/config';
import { call } from '../../shared/contracts';
import { decodeEdgeKey } from '../../shared/crypto';
import { createBroker } from '../../shared/moleculer';
import { api } from '../helpers/http';
import { tempDataDir, uniqueNamespace } from '../helpers/ids';
import { freePort, startProcess, waitFor, type CapstanProcess } from '../helpers/processes';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
jest.setTimeout(120_000);

/**
 * The distributed shape over the real NATS server: a gateway, two `state` replicas sharing one
 * embedded store and electing their writer through a Redis lease, and `rbac` — four processes —
 * driven only through the public API. Then the leader is SIGKILLed under a stream of writes.
 */
describe('distributed shape over NATS', () => {
  const namespace = uniqueNamespace('dist');
  const dataDir = tempDataDir();
  const procs: Record<string, CapstanProcess> = {};
  let observer: ServiceBroker;
  let base: string;
  let token: string;
  let startState: (id: string) => void;

  const common = { CAPSTAN_NAMESPACE: namespace, CAPSTAN_TRANSPORTER: NATS_URL, REDIS_URL, CAPSTAN_DATA_DIR: dataDir, CAPSTAN_LOG_LEVEL: 'info' };

  beforeAll(async () => {
    const port = await freePort();
    const tunnelPort = await freePort();
    base = `https://127.0.0.1:${port}`;
    startState = (id: string) => {
      procs[id] = startProcess(id, { ...common, CAPSTAN_SERVICES: 'state', CAPSTAN_NODE_ID: id, CAPSTAN_ELECTION: 'redis', CAPSTAN_TUNNEL_PORT: String(tunnelPort) });
    };
    startState('state-a');
    startState('state-b');
    procs.rbac = startProcess('rbac', { ...common, CAPSTAN_SERVICES: 'rbac', CAPSTAN_NODE_ID: 'rbac-1' });
    procs.gateway = startProcess('gateway', {
      ...common, CAPSTAN_SERVICES: 'gateway', CAPSTAN_NODE_ID: 'gateway-1', CAPSTAN_HOST: '127.0.0.1', CAPSTAN_HTTPS_PORT: String(port),
      CAPSTAN_DATA_DIR: `${dataDir}/gateway`,
    });
    observer = createBroker(loadConfig({}, { namespace, transporter: NATS_URL, nodeID: `observer-${process.pid}`, logLevel: 'warn', dataDir }));
    await observer.start();
    // Ready when both state (status) and rbac (admin check) answer through the gateway.
    await waitFor(async () => (await api(base, 'GET', '/api/system/status')).status === 200 && (await api(base, 'GET', '/api/users/admin/check')).status === 404, 45_000, 'the gateway to serve through NATS');
  });

  afterAll(async () => {
    await Promise.all(Object.values(procs).map((p) => p.kill()));
    // Keep each process's log for diagnosis of a failed run.
    for (const p of Object.values(procs)) fs.writeFileSync(path.join(os.tmpdir(), `capstan-${namespace}-${p.name}.log`), p.output.join('\n'));
    await observer?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });


  async function leaderOf(): Promise<{ nodeID: string; fence: number } | undefined> {
    for (const nodeID of ['state-a', 'state-b']) {
      const info = await call(observer, 'state.leader', {}, { nodeID, timeout: 1000 }).catch(() => undefined);
      if (info?.isLeader) return { nodeID, fence: info.fence };
    }
    return undefined;
  }

  it('serves the public API through the gateway, four processes over NATS', async () => {
    expect((await api(base, 'GET', '/api/users/admin/check')).status).toBe(404);
    const init = await api(base, 'POST', '/api/users/admin/init', { body: { Username: 'admin', Password: 'a-strong-password' } });
    expect(`${init.status} ${init.text}`).toMatch(/^200 /);
    const auth = await api(base, 'POST', '/api/auth', { body: { Username: 'admin', Password: 'a-strong-password' } });
    expect(auth.status).toBe(200);
    token = auth.body.jwt;
    const created = await api(base, 'POST', '/api/endpoints', { token, body: { Name: 'edge-dist', EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' } });
    expect(created.status).toBe(200);
    expect(decodeEdgeKey(created.body.EdgeKey).endpointId).toBe(created.body.Id);
    const list = await api(base, 'GET', '/api/endpoints?search=dist', { token });
    expect(list.status).toBe(200);
    expect(list.headers['x-total-count']).toBe('1');
    // Both replicas answer, exactly one leads, and a follower forwards to it.
    const infos = await Promise.all(['state-a', 'state-b'].map((nodeID) => call(observer, 'state.leader', {}, { nodeID })));
    expect(infos.filter((i) => i.isLeader)).toHaveLength(1);
    const follower = infos.find((i) => !i.isLeader)!;
    const viaFollower = await call(observer, 'state.getEnvironment', { id: created.body.Id }, { nodeID: follower.nodeID });
    expect(viaFollower.Name).toBe('edge-dist');
  });

  it('fails over within 5 s when the leader is SIGKILLed under a stream of writes, losing no acknowledged write', async () => {
    const before = await waitFor(leaderOf, 10_000, 'a leader');
    const acked: string[] = [];
    const failures: { status: number; message: string }[] = [];
    let n = 0;
    let killedAt = 0;
    let firstAckAfterKill = 0;
    let stop = false;
    const writer = async (w: number) => {
      while (!stop) {
        const name = `t-${w}-${n++}`;
        const sentAt = Date.now();
        const res = await api(base, 'POST', '/api/tags', { token, body: { Name: name } }).catch((err) => ({ status: 0, body: { message: String(err) } }));
        if (res.status === 200) {
          acked.push(name);
          if (killedAt && sentAt > killedAt && !firstAckAfterKill) firstAckAfterKill = Date.now();
        } else {
          failures.push({ status: res.status, message: res.body?.message ?? '' });
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    // Writers block on requests that reached the dead node until Moleculer notices it is gone; a
    // probe that starts a fresh write every 100 ms shows when the new leader is actually serving.
    const probes: Promise<void>[] = [];
    const probeTimer = setInterval(() => {
      if (!killedAt) return;
      const name = `p-${n++}`;
      const sentAt = Date.now();
      probes.push(api(base, 'POST', '/api/tags', { token, body: { Name: name } }).then((res) => {
        if (res.status === 200) {
          acked.push(name);
          if (sentAt > killedAt && !firstAckAfterKill) firstAckAfterKill = Date.now();
        } else failures.push({ status: res.status, message: res.body?.message ?? '' });
      }, () => undefined));
    }, 100);
    await new Promise((r) => setTimeout(r, 1500));
    const ackedBeforeKill = acked.length;
    const survivor = before.nodeID === 'state-a' ? 'state-b' : 'state-a';
    killedAt = Date.now();
    procs[before.nodeID].child.kill('SIGKILL');
    const leaderAt = await waitFor(async () => ((await call(observer, 'state.leader', {}, { nodeID: survivor, timeout: 500 })).isLeader ? Date.now() : 0), 20_000, 'the survivor to lead');
    await waitFor(async () => firstAckAfterKill, 20_000, 'a write acknowledged by the new leader');
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    clearInterval(probeTimer);
    await Promise.all([...writers, ...probes]);

    const after = await leaderOf();
    expect(after?.nodeID).not.toBe(before.nodeID);
    expect(after!.fence).toBeGreaterThan(before.fence);
    const failoverMs = firstAckAfterKill - killedAt;
    process.stdout.write(`failover: ${survivor} leads ${leaderAt - killedAt} ms and acknowledged a new write ${failoverMs} ms after SIGKILL; ${ackedBeforeKill} writes before, ${acked.length} acknowledged in all, ${failures.length} refused during the gap\n`);
    expect(failoverMs).toBeLessThan(5000);
    expect(ackedBeforeKill).toBeGreaterThan(10);
    for (const f of failures) {
      expect(f.status).toBe(503);
      expect(f.message).toMatch(/retry/i);
    }
    const tags = await api(base, 'GET', '/api/tags', { token });
    const names = new Set((tags.body as { Name: string }[]).map((t) => t.Name));
    expect(acked.filter((a) => !names.has(a))).toEqual([]);
  });

  it('deposes a paused leader: once resumed it is a follower at once and nothing is written under its old fence', async () => {
    // The previous test killed one replica; bring it back so there are two again.
    for (const id of ['state-a', 'state-b']) if (procs[id].child.exitCode !== null || procs[id].child.signalCode !== null) startState(id);
    await waitFor(async () => {
      const infos = await Promise.all(['state-a', 'state-b'].map((nodeID) => call(observer, 'state.leader', {}, { nodeID, timeout: 1000 })));
      return infos.filter((i) => i.isLeader).length === 1 && infos.every((i) => i.leaderNodeID);
    }, 30_000, 'both replicas up with one leader');
    const old = (await leaderOf())!;
    const other = old.nodeID === 'state-a' ? 'state-b' : 'state-a';
    procs[old.nodeID].child.kill('SIGSTOP');
    try {
      const next = await waitFor(async () => {
        const info = await call(observer, 'state.leader', {}, { nodeID: other, timeout: 500 });
        return info.isLeader ? info : undefined;
      }, 10_000, `${other} to take over from the paused leader`);
      expect(next.fence).toBeGreaterThan(old.fence);
      const during = await api(base, 'POST', '/api/tags', { token, body: { Name: 'while-paused' } });
      expect([200, 503]).toContain(during.status);
    } finally {
      procs[old.nodeID].child.kill('SIGCONT');
    }
    // The resumed replica's lease deadline has passed: its first answer already says follower.
    const resumed = await waitFor(() => call(observer, 'state.leader', {}, { nodeID: old.nodeID, timeout: 500 }), 15_000, 'the resumed replica to answer');
    expect(resumed.isLeader).toBe(false);
    // A write sent to it is forwarded to the new leader and committed under the new fence.
    const viaOld = await waitFor(() => call(observer, 'state.createTag', { Name: 'via-resumed' }, { nodeID: old.nodeID, timeout: 3000 }), 15_000, 'a write through the resumed replica');
    const tags = await call(observer, 'state.listTags', {}, { nodeID: other });
    expect(tags.map((t) => t.ID)).toContain(viaOld.ID);
    expect((await call(observer, 'state.leader', {}, { nodeID: other })).isLeader).toBe(true);
  });
});
