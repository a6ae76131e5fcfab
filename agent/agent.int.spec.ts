import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeEdgeKey } from '../shared/crypto';

const MAIN = path.resolve(__dirname, '../dist/agent/main.js');

/** Runs the built agent (`npm run build` first, as `npm test` does) and returns what a user sees. */
function runAgent(env: Record<string, string>) {
  const dataPath = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-agent-'));
  try {
    const r = spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', DATA_PATH: dataPath, ...env }, encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, stderr: r.stderr, stdout: r.stdout };
  } finally {
    fs.rmSync(dataPath, { recursive: true, force: true });
  }
}

const KEY = encodeEdgeKey({ apiUrl: 'https://127.0.0.1:9', tunnelAddr: '127.0.0.1:8000', fingerprint: 'A'.repeat(43) + '=', endpointId: 3 });

describe('agent program start-up errors', () => {
  it('a malformed key is one clear message and exit code 2, not a stack trace', () => {
    const r = runAgent({ EDGE: '1', EDGE_KEY: 'not-a-key!', EDGE_ID: 'h1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('EDGE_KEY: invalid key format');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unreachable Docker engine is one clear message and exit code 1', () => {
    const r = runAgent({ EDGE: '1', EDGE_KEY: KEY, EDGE_ID: 'h1', DOCKER_HOST: 'unix:///nonexistent/docker.sock' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker.sock: connect ENOENT/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
