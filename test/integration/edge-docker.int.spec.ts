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
});
