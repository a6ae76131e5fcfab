import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../shared/config';
import { createBroker } from '../../shared/moleculer';
import { api } from '../helpers/http';
import { tempDataDir, uniqueNamespace } from '../helpers/ids';
import { freePort, startProcess, waitFor, type CapstanProcess } from '../helpers/processes';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
jest.setTimeout(120_000);

const ADMIN = { Username: 'admin', Password: 'a-strong-password' };
const AGENTS = 16;

/**
 * Check-in batches between processes over the real NATS server: a gateway, two polling replicas
 * and a core process. A polling replica is SIGKILLed under a stream of check-ins: the batches it
 * held (and those sent to it before the cluster noticed) go to the other replica, and every agent
 * still gets its own environment's reply, never an error.
 */
describe('check-in batches when a polling replica dies', () => {
  const namespace = uniqueNamespace('cbatch');
  const dataDir = tempDataDir();
  const procs: Record<string, CapstanProcess> = {};
  let observer: ServiceBroker;
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    const common = { CAPSTAN_NAMESPACE: namespace, CAPSTAN_TRANSPORTER: NATS_URL, CAPSTAN_DATA_DIR: dataDir, CAPSTAN_TUNNEL_PORT: String(await freePort()) };
    procs.core = startProcess('core', { ...common, CAPSTAN_SERVICES: 'state,rbac,tunnel', CAPSTAN_NODE_ID: `${namespace}-core`, CAPSTAN_ELECTION: 'local' });
    for (const name of ['polling-1', 'polling-2']) procs[name] = startProcess(name, { ...common, CAPSTAN_SERVICES: 'polling', CAPSTAN_NODE_ID: `${namespace}-${name}` });
    procs.gateway = startProcess('gateway', {
      ...common, CAPSTAN_SERVICES: 'gateway', CAPSTAN_NODE_ID: `${namespace}-gateway`, CAPSTAN_HOST: '127.0.0.1', CAPSTAN_HTTPS_PORT: String(port), CAPSTAN_DATA_DIR: `${dataDir}/gateway`,
    });
    observer = createBroker(loadConfig({}, { namespace, transporter: NATS_URL, nodeID: `observer-${process.pid}`, logLevel: 'warn', dataDir }));
    await observer.start();
    await waitFor(async () => ['polling-1', 'polling-2'].every((n) => observer.registry.nodes.get(`${namespace}-${n}`)?.services.some((s) => s.name === 'polling')), 45_000, 'both polling replicas');
    await waitFor(async () => (await api(base, 'GET', '/api/users/admin/check')).status === 404, 45_000, 'the gateway to serve through NATS');
  });

  afterAll(async () => {
    await Promise.all(Object.values(procs).map((p) => p.kill()));
    for (const p of Object.values(procs)) fs.writeFileSync(path.join(os.tmpdir(), `capstan-${namespace}-${p.name}.log`), p.output.join('\n'));
    await observer?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers every check-in with its own reply while a replica holding batches is SIGKILLed', async () => {
    expect((await api(base, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    const token = (await api(base, 'POST', '/api/auth', { body: ADMIN })).body.jwt as string;
    // A different check-in interval each, so each environment has its own reply bytes and ETag.
    const ids: number[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const res = await api(base, 'POST', '/api/endpoints', { token, body: { Name: `cb-${i}`, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', EdgeCheckinInterval: 5 + i } });
      expect(res.status).toBe(200);
      ids.push(res.body.Id);
    }
    const checkin = (i: number, etag?: string) => api(base, 'GET', `/api/endpoints/${ids[i]}/edge/status`, {
      headers: { 'X-PortainerAgent-EdgeID': `agent-${i}`, 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1', ...(etag ? { 'If-None-Match': etag } : {}) },
    });
    const etags: string[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const res = await waitFor(async () => {
        const r = await checkin(i);
        return r.status === 200 ? r : undefined;
      }, 10_000, `agent ${i} to bind`);
      expect(res.body.checkin).toBe(5 + i);
      etags.push(res.headers.etag as string);
    }

    const seen: { i: number; status: number; etag: string; startedAt: number; ms: number }[] = [];
    let stop = false;
    const loop = async (i: number) => {
      for (let n = 0; !stop; n++) {
        const startedAt = Date.now();
        // Every other one without If-None-Match: 200s with the body as well as 304s.
        const res = await checkin(i, n % 2 ? etags[i] : undefined);
        seen.push({ i, status: res.status, etag: String(res.headers.etag), startedAt, ms: Date.now() - startedAt });
      }
    };
    const loops = ids.map((_, i) => loop(i));
    await new Promise((r) => setTimeout(r, 1500));
    const killedAt = Date.now();
    procs['polling-1'].child.kill('SIGKILL');
    // Each node declares a silent peer gone on its own clock: within heartbeatTimeout (3 s) plus
    // one check (1 s). Well after that, the gateway has sent batches only to the survivor.
    await new Promise((r) => setTimeout(r, 9000));
    const lastSecond = Date.now() - 1500;
    stop = true;
    await Promise.all(loops);

    const bad = seen.filter((s) => (s.status !== 200 && s.status !== 304) || s.etag !== etags[s.i]);
    expect(bad).toEqual([]);
    // Some were held by the dead replica until the cluster noticed, then answered by the other.
    const held = seen.filter((s) => s.startedAt >= killedAt - 50 && s.ms > 1000);
    expect(held.length).toBeGreaterThan(0);
    // Once the gateway noticed, only the survivor gets batches: fast again.
    const after = seen.filter((s) => s.startedAt > lastSecond);
    expect(after.length).toBeGreaterThan(AGENTS);
    expect(Math.max(...after.map((s) => s.ms))).toBeLessThan(1000);
    process.stdout.write(`${seen.length} check-ins, ${held.length} held by the dead replica (longest ${Math.max(...held.map((s) => s.ms))} ms), all answered\n`);
  });
});
