import http from 'node:http';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { startAgentApi, type AgentApi } from './api-server';

const DOCKER_HOST = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
const IMAGE = process.env.CAPSTAN_TEST_IMAGE || 'capstan-test/busybox:latest';
const SIGNED = 'x-test-signature';
jest.setTimeout(60_000);

function get(port: number, path: string, headers: Record<string, string> = { [SIGNED]: 'ok' }): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    }).on('error', reject);
  });
}

function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8' }).trim();
}

// `npm test` starts dockerd; CAPSTAN_TEST_NO_DOCKER=1 opts out of the Docker-backed tests.
const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;

/** The agent API against the real engine: signed requests only, streams, hijacked exec. */
withDocker('agent API server over the real Docker engine', () => {
  let api: AgentApi;
  let sessions = 0;
  const containers: string[] = [];

  beforeAll(async () => {
    execFileSync('bash', ['infra/ensure-test-image.sh'], { stdio: 'inherit' });
    api = await startAgentApi({
      dockerHost: DOCKER_HOST, agentVersion: '2.23.0',
      verify: (h) => (h[SIGNED] === 'ok' ? null : 'Missing request signature headers'),
      onSession: (d) => (sessions += d),
    });
  });
  afterAll(async () => {
    await api.close();
    for (const c of containers) docker('rm', '-f', c);
  });

  it('answers /ping unsigned with the agent headers, and refuses unsigned Docker calls', async () => {
    const ping = await get(api.port, '/ping', {});
    expect(ping.status).toBe(204);
    expect(ping.headers['portainer-agent-api-version']).toBe('2');
    const denied = await get(api.port, '/containers/json', {});
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body).message).toBe('Missing request signature headers');
  });

  it('proxies plain calls with the Docker version prefix', async () => {
    const id = docker('run', '-d', '--network', 'none', IMAGE, 'sleep', '60');
    containers.push(id);
    const res = await get(api.port, '/v1.41/containers/json');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).map((c: { Id: string }) => c.Id)).toContain(id);
  });

  it('streams a followed log as it is written', async () => {
    const id = docker('run', '-d', '--network', 'none', IMAGE, 'sh', '-c', 'echo first; sleep 30; echo second');
    containers.push(id);
    const first = await new Promise<string>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: api.port, path: `/containers/${id}/logs?follow=1&stdout=1`, headers: { [SIGNED]: 'ok' } }, (res) => {
        res.once('data', (c: Buffer) => {
          resolve(c.toString('latin1'));
          req.destroy();
        });
      });
      req.on('error', (err) => (err.message.includes('aborted') ? undefined : reject(err)));
    });
    expect(first).toContain('first');
  });

  it('runs an interactive exec over a hijacked connection and counts the session', async () => {
    const id = docker('run', '-d', '--network', 'none', IMAGE, 'sleep', '60');
    containers.push(id);
    const exec = await new Promise<string>((resolve, reject) => {
      const body = JSON.stringify({ AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Cmd: ['sh'] });
      const req = http.request({ host: '127.0.0.1', port: api.port, method: 'POST', path: `/containers/${id}/exec`, headers: { [SIGNED]: 'ok', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(JSON.parse(b).Id));
      });
      req.on('error', reject);
      req.end(body);
    });
    const sock = net.connect(api.port, '127.0.0.1');
    const start = JSON.stringify({ Detach: false, Tty: true });
    sock.write(`POST /exec/${exec}/start HTTP/1.1\r\nHost: docker\r\n${SIGNED}: ok\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: ${start.length}\r\n\r\n${start}`);
    let seen = '';
    await new Promise<void>((resolve) => {
      sock.on('data', (c: Buffer) => {
        seen += c.toString('latin1');
        if (seen.includes('101 UPGRADED') && !seen.includes('capstan-') && seen.includes('\r\n\r\n')) sock.write('echo capstan-$((40+2))\n');
        if (seen.includes('capstan-42')) resolve();
      });
    });
    expect(seen).toMatch(/^HTTP\/1.1 101 UPGRADED/);
    expect(sessions).toBe(1);
    sock.end('exit\n');
    await new Promise((r) => sock.on('close', r));
    await new Promise((r) => setTimeout(r, 100));
    expect(sessions).toBe(0);
  });
});
