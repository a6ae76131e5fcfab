import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { api } from '../helpers/http';
import { tempDataDir } from '../helpers/ids';
import { startTestNode, type TestNode } from '../helpers/node';
import { AGENT_MAIN, freePort, startProcess, waitFor, type CapstanProcess } from '../helpers/processes';

const run = promisify(execFile);
const IMAGE = process.env.CAPSTAN_TEST_IMAGE || 'capstan-test/busybox:latest';
const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;
jest.setTimeout(180_000);

/**
 * Standard mode end to end: a real agent process polls the embedded server, opens the reverse
 * tunnel on demand, and the host's real Docker engine answers through `/api/endpoints/{id}/docker`.
 */
withDocker('Docker API of an edge host through Capstan', () => {
  let n: TestNode;
  let agent: CapstanProcess;
  let token: string;
  let envId: number;
  let apiKey: string;
  const agentData = tempDataDir('capstan-agent-');
  const dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-docker-cli-'));

  beforeAll(async () => {
    await run('bash', ['infra/ensure-test-image.sh']);
    n = await startTestNode({ tunnelPort: await freePort() });
    await api(n.url, 'POST', '/api/users/admin/init', { body: { Username: 'admin', Password: 'a-long-password' } });
    token = (await api(n.url, 'POST', '/api/auth', { body: { Username: 'admin', Password: 'a-long-password' } })).body.jwt;
    const env = await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: 'edge-host', EndpointCreationType: 4, URL: n.url, EdgeCheckinInterval: 1 } });
    expect(env.status).toBe(200);
    envId = env.body.Id;
    agent = startProcess('agent', {
      EDGE: '1', EDGE_KEY: env.body.EdgeKey, EDGE_ID: 'agent-e2e', EDGE_INSECURE_POLL: '1', DATA_PATH: agentData, LOG_LEVEL: 'info',
    }, AGENT_MAIN);
    await waitFor(async () => (await api(n.url, 'GET', `/api/endpoints/${envId}`, { token })).body.EdgeID === 'agent-e2e', 20_000, 'the agent to check in');
    const key = await api(n.url, 'POST', '/api/users/1/tokens', { token, body: { description: 'docker-cli', password: 'a-long-password' } });
    apiKey = key.body.rawAPIKey;
    fs.writeFileSync(path.join(dockerConfig, 'config.json'), JSON.stringify({ HttpHeaders: { 'X-API-Key': apiKey } }));
  });

  afterAll(async () => {
    await agent?.kill();
    await n?.stop();
    fs.rmSync(agentData, { recursive: true, force: true });
    fs.rmSync(dockerConfig, { recursive: true, force: true });
    if (agent) fs.writeFileSync(path.join(os.tmpdir(), 'capstan-edge-docker-agent.log'), agent.output.join('\n'));
  });

  it('opens the tunnel on the first Docker call and answers it', async () => {
    const t0 = Date.now();
    const res = await api(n.url, 'GET', `/api/endpoints/${envId}/docker/containers/json?all=1`, { token });
    expect(`${res.status} ${res.text.slice(0, 200)}`).toMatch(/^200 /);
    expect(Array.isArray(res.body)).toBe(true);
    process.stdout.write(`first Docker call on an idle environment answered in ${Date.now() - t0} ms (check-in interval 1 s)\n`);
    const info = await api(n.url, 'GET', `/api/endpoints/${envId}/docker/info`, { apiKey });
    expect(info.status).toBe(200);
    expect(info.body.ServerVersion).toBeTruthy();
  });

  it('refuses Docker calls without credentials and reveals nothing', async () => {
    const res = await api(n.url, 'GET', `/api/endpoints/${envId}/docker/containers/json`);
    expect(res.status).toBe(401);
    expect(res.text).not.toContain('edge-host');
  });

  it('works with the real Docker CLI pointed at the gateway (API key in HttpHeaders, verified TLS)', async () => {
    const ca = path.join(n.config.dataDir, 'certs', 'cert.pem');
    const host = `tcp://127.0.0.1:${n.node.gateway!.port}/api/endpoints/${envId}/docker`;
    const args = ['--config', dockerConfig, '--tlsverify', '--tlscacert', ca, '-H', host];
    const docker = (...a: string[]) => run('docker', [...args, ...a], { timeout: 90_000, env: { ...process.env, DOCKER_BUILDKIT: '0' } });
    const name = `capstan-e2e-${process.pid}`;
    const vol = `capstan-e2e-vol-${process.pid}`;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-cli-'));
    const since = Math.floor(Date.now() / 1000) - 1;
    try {
      const ran = await docker('run', '-d', '--name', name, '--network', 'none', IMAGE, 'sh', '-c', 'echo hello-from-capstan; sleep 120');
      expect(ran.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
      expect((await docker('ps', '-a', '--format', '{{.Names}}')).stdout).toContain(name);
      await waitFor(async () => (await docker('logs', name)).stdout.includes('hello-from-capstan'), 10_000, 'the container log');
      // logs -f streams: the first line arrives while the container still runs.
      const follow = await run('timeout', ['3', 'docker', ...args, 'logs', '-f', name]).catch((e: { stdout: string }) => e);
      expect(follow.stdout).toContain('hello-from-capstan');
      expect((await docker('exec', name, 'sh', '-c', 'echo $((6*7))')).stdout.trim()).toBe('42');
      // exec -it under a real pty (util-linux `script` provides it).
      const tty = await run('script', ['-qec', ['docker', ...args, 'exec', '-it', name, 'sh', '-c', "tty; echo tty-$((1+1))"].map((x) => `'${x}'`).join(' '), '/dev/null'], { timeout: 60_000 });
      expect(tty.stdout).toMatch(/\/dev\/pts\/[0-9]+/);
      expect(tty.stdout).toContain('tty-2');
      fs.writeFileSync(path.join(work, 'in.txt'), 'copied-in');
      await docker('cp', path.join(work, 'in.txt'), `${name}:/tmp/in.txt`);
      await docker('cp', `${name}:/tmp/in.txt`, path.join(work, 'out.txt'));
      expect(fs.readFileSync(path.join(work, 'out.txt'), 'utf8')).toBe('copied-in');
      expect((await docker('stats', '--no-stream', '--format', '{{.Name}}', name)).stdout.trim()).toBe(name);
      expect((await docker('images', '--format', '{{.Repository}}')).stdout).toContain('capstan-test/busybox');
      expect((await docker('network', 'ls', '--format', '{{.Name}}')).stdout).toContain('none');
      await docker('volume', 'create', vol);
      expect((await docker('volume', 'ls', '-q')).stdout).toContain(vol);
      await docker('volume', 'rm', vol);
      fs.mkdirSync(path.join(work, 'ctx'));
      fs.writeFileSync(path.join(work, 'ctx', 'Dockerfile'), `FROM ${IMAGE}\nRUN echo built > /built.txt\n`);
      const built = await docker('build', '-q', '-t', `capstan-test/built-${process.pid}`, path.join(work, 'ctx'));
      expect(built.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
      await docker('stop', '-t', '1', name);
      const events = await docker('events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', `container=${name}`, '--format', '{{.Action}}');
      expect(events.stdout).toMatch(/start/);
      await docker('rm', name);
      expect((await docker('ps', '-a', '--format', '{{.Names}}')).stdout).not.toContain(name);
    } finally {
      await docker('rm', '-f', name).catch(() => undefined);
      await docker('rmi', '-f', `capstan-test/built-${process.pid}`).catch(() => undefined);
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
