import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../shared/config';
import { call } from '../../shared/contracts';
import { createBroker } from '../../shared/moleculer';
import { TunnelRefusedError, dialTunnel, type TunnelRoute } from '../../shared/tunnel';
import { TEST_IMAGE, ensureTestImage, removeContainersNamed } from '../helpers/docker';
import { api } from '../helpers/http';
import { tempDataDir, uniqueNamespace } from '../helpers/ids';
import { AGENT_MAIN, freePort, startProcess, waitFor, type CapstanProcess } from '../helpers/processes';
import { adminToken } from '../helpers/server';

const run = promisify(execFile);
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;
jest.setTimeout(180_000);

/**
 * The gateway in another process than the tunnel service, over the real NATS server: it reaches
 * the agent only through the tunnel node's data listener, with the route and token
 * `tunnel.ensureTunnel` gave it over the bus. A real agent process and the host's Docker engine
 * answer a plain call, a followed log stream, a streamed upload and hijacked execs; a connection to
 * the data listener with a wrong token or for an unknown tunnel gets nothing.
 */
withDocker('Docker API through a tunnel held by another process (data listener)', () => {
  const namespace = uniqueNamespace('remote');
  const dataDir = tempDataDir();
  const agentData = tempDataDir('capstan-agent-');
  const dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-docker-cli-'));
  const name = `capstan-remote-${process.pid}`;
  const procs: CapstanProcess[] = [];
  let observer: ServiceBroker;
  let base: string;
  let gatewayPort: number;
  let token: string;
  let envId: number;
  let docker: (...args: string[]) => Promise<{ stdout: string }>;

  beforeAll(async () => {
    await ensureTestImage();
    gatewayPort = await freePort();
    base = `https://127.0.0.1:${gatewayPort}`;
    const common = {
      CAPSTAN_NAMESPACE: namespace, CAPSTAN_TRANSPORTER: NATS_URL, CAPSTAN_ELECTION: 'local', CAPSTAN_DATA_DIR: dataDir,
      CAPSTAN_TUNNEL_PORT: String(await freePort()), CAPSTAN_HOST: '127.0.0.1',
    };
    procs.push(startProcess('core', { ...common, CAPSTAN_SERVICES: 'state,rbac,polling,tunnel,snapshots', CAPSTAN_NODE_ID: 'core-1' }));
    procs.push(startProcess('gateway', {
      ...common, CAPSTAN_SERVICES: 'gateway', CAPSTAN_NODE_ID: 'gateway-1', CAPSTAN_HTTPS_PORT: String(gatewayPort), CAPSTAN_DATA_DIR: `${dataDir}/gateway`,
    }));
    observer = createBroker(loadConfig({}, { namespace, transporter: NATS_URL, nodeID: `observer-${process.pid}`, logLevel: 'warn', dataDir }));
    await observer.start();
    // Ready when state (status) and rbac (admin check) answer through the gateway.
    await waitFor(async () => (await api(base, 'GET', '/api/system/status')).status === 200 && (await api(base, 'GET', '/api/users/admin/check')).status === 404, 45_000, 'the gateway to serve through NATS');
    token = await adminToken(base, 'admin', 'a-long-password');
    const env = await api(base, 'POST', '/api/endpoints', { token, body: { Name: 'remote-edge', EndpointCreationType: 4, URL: base, EdgeCheckinInterval: 1 } });
    expect(env.status).toBe(200);
    envId = env.body.Id;
    procs.push(startProcess('agent', { EDGE: '1', EDGE_KEY: env.body.EdgeKey, EDGE_ID: 'remote-agent', EDGE_INSECURE_POLL: '1', DATA_PATH: agentData }, AGENT_MAIN));
    await waitFor(async () => (await api(base, 'GET', `/api/endpoints/${envId}`, { token })).body.EdgeID === 'remote-agent', 30_000, 'the agent to check in');
    const key = await api(base, 'POST', '/api/users/1/tokens', { token, body: { description: 'docker-cli', password: 'a-long-password' } });
    fs.writeFileSync(path.join(dockerConfig, 'config.json'), JSON.stringify({ HttpHeaders: { 'X-API-Key': key.body.rawAPIKey } }));
    docker = (...a: string[]) => run('docker', [...dockerArgs(), ...a], { timeout: 90_000 });
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    for (const p of procs) fs.writeFileSync(path.join(os.tmpdir(), `capstan-${namespace}-${p.name}.log`), p.output.join('\n'));
    await observer?.stop();
    await removeContainersNamed(name);
    for (const d of [dataDir, agentData, dockerConfig]) fs.rmSync(d, { recursive: true, force: true });
  });

  it('answers a plain call, a followed log stream, an upload and hijacked execs through the data listener', async () => {
    const list = await api(base, 'GET', `/api/endpoints/${envId}/docker/containers/json?all=1`, { token });
    expect(`${list.status} ${list.text.slice(0, 200)}`).toMatch(/^200 /);
    expect(Array.isArray(list.body)).toBe(true);
    // The gateway keeps that call's connection alive, and it goes from its process to core's data listener.
    const ready = procs[0].output.map((l) => (l.includes('tunnel data listener ready') ? JSON.parse(l) : undefined)).find(Boolean);
    const dataPort = Number(String(ready?.advertised).split(':')[1]);
    const { stdout: sockets } = await run('ss', ['-Htnp', 'state', 'established', `( dport = :${dataPort} )`]);
    expect(sockets).toContain(`pid=${procs[1].child.pid},`);

    await docker('run', '-d', '--name', name, '--network', 'none', TEST_IMAGE, 'sh', '-c', 'echo hello-through-the-data-listener; sleep 120');
    // logs -f streams: the line arrives while the container still runs and the call still streams.
    const follow = await run('timeout', ['3', 'docker', ...dockerArgs(), 'logs', '-f', name]).catch((e: { stdout: string }) => e);
    expect(follow.stdout).toContain('hello-through-the-data-listener');
    // exec without -i half-closes stdin at once: the answer must still come back.
    expect((await docker('exec', name, 'sh', '-c', 'echo $((6*7))')).stdout.trim()).toBe('42');
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-remote-cp-'));
    try {
      fs.writeFileSync(path.join(work, 'in.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
      await docker('cp', path.join(work, 'in.bin'), `${name}:/tmp/in.bin`);
      expect((await docker('exec', name, 'sh', '-c', 'wc -c < /tmp/in.bin')).stdout.trim()).toBe(String(3 * 1024 * 1024));
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  it('refuses a wrong token and an unknown tunnel on the data listener; the route from the bus opens a channel to the agent', async () => {
    const route: TunnelRoute = await call(observer, 'tunnel.ensureTunnel', { id: envId }, { timeout: 30_000 });
    expect(route).toMatchObject({ node: 'core-1', data: { host: '127.0.0.1' } });
    const refused = new TunnelRefusedError('unknown tunnel or wrong token');
    await expect(dialTunnel({ ...route, token: 'A'.repeat(43) })).rejects.toThrow(refused);
    await expect(dialTunnel({ ...route, port: route.port === 65535 ? 1024 : route.port + 1 })).rejects.toThrow(refused);
    // The right token reaches the agent, which refuses an unsigned request itself.
    const socket = await dialTunnel(route);
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (b: Buffer) => (text += b.toString('latin1')));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.end('GET /_ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
  });

  /** The Docker CLI pointed at the gateway, API key in its HttpHeaders, the gateway's certificate verified. */
  function dockerArgs(): string[] {
    return ['--config', dockerConfig, '--tlsverify', '--tlscacert', path.join(dataDir, 'gateway', 'certs', 'cert.pem'), '-H', `tcp://127.0.0.1:${gatewayPort}/api/endpoints/${envId}/docker`];
  }
});
