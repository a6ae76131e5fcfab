import { api } from './http';
import { tempDataDir } from './ids';
import { freePort, startProcess, waitFor, type CapstanProcess } from './processes';

/** A Capstan server process a benchmark started for itself. */
export interface BenchServer {
  base: string;
  process: CapstanProcess;
  dataDir: string;
}

/**
 * Starts the embedded default as its own process (free ports, a temporary data directory) and
 * waits until it answers; `env` adds or overrides CAPSTAN_* settings. On failure its last log
 * lines are printed.
 */
export async function startBenchServer(env: Record<string, string> = {}): Promise<BenchServer> {
  const dataDir = tempDataDir('capstan-bench-');
  const port = await freePort();
  const server = startProcess('bench-server', {
    CAPSTAN_DATA_DIR: dataDir, CAPSTAN_HOST: '127.0.0.1', CAPSTAN_HTTPS_PORT: String(port),
    CAPSTAN_TUNNEL_PORT: String(await freePort()), CAPSTAN_LOG_LEVEL: 'warn', ...env,
  });
  const base = `https://127.0.0.1:${port}`;
  await waitFor(async () => (await api(base, 'GET', '/api/system/status')).status === 200, 60_000, 'the server to start')
    .catch((err) => {
      console.error(server.output.slice(-20).join('\n'));
      throw err;
    });
  return { base, process: server, dataDir };
}

/** Signs in as the administrator, creating it first on a fresh server; the session token. */
export async function adminToken(base: string, username: string, password: string): Promise<string> {
  if ((await api(base, 'GET', '/api/users/admin/check')).status === 404) {
    await api(base, 'POST', '/api/users/admin/init', { body: { Username: username, Password: password } });
  }
  const auth = await api(base, 'POST', '/api/auth', { body: { Username: username, Password: password } });
  if (auth.status !== 200) throw new Error(`sign-in failed: ${auth.status} ${auth.text}`);
  return auth.body.jwt as string;
}
