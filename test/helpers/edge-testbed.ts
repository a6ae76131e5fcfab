import fs from 'node:fs';
import type { Config } from '../../shared/config';
import { ensureTestImage, removeContainersNamed } from './docker';
import { api } from './http';
import { tempDataDir } from './ids';
import { startTestNode, type TestNode } from './node';
import { AGENT_MAIN, freePort, startProcess, type CapstanProcess } from './processes';
import { adminToken } from './server';

/** An Edge environment as created through the API. */
export interface CreatedEdge {
  Id: number;
  EdgeKey: string;
  Edge: { AsyncMode: boolean };
}

/**
 * An embedded Capstan with an admin signed in, real agent processes against the local engine,
 * and everything cleaned up after: agents killed, the node stopped, containers whose name
 * contains `tag` removed, agent data directories deleted.
 */
export class EdgeTestbed {
  n!: TestNode;
  token!: string;
  readonly agents: CapstanProcess[] = [];
  private readonly dirs: string[] = [];

  constructor(readonly tag: string) {}

  async start(overrides: Partial<Config> = {}): Promise<void> {
    await ensureTestImage();
    this.n = await startTestNode({ tunnelPort: await freePort(), ...overrides });
    this.token = await adminToken(this.n.url, 'admin', 'a-long-password');
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.kill()));
    await this.n?.stop();
    await removeContainersNamed(this.tag);
    this.dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  }

  /** A real agent process (`env` adds variables such as EDGE_ASYNC). */
  startAgent(key: string, edgeId: string, env: Record<string, string> = {}): CapstanProcess {
    const dataDir = tempDataDir('capstan-agent-');
    this.dirs.push(dataDir);
    const p = startProcess(`agent-${this.agents.length}`, {
      EDGE: '1', EDGE_KEY: key, EDGE_ID: edgeId, EDGE_INSECURE_POLL: '1', DATA_PATH: dataDir, LOG_LEVEL: 'info', ...env,
    }, AGENT_MAIN);
    this.agents.push(p);
    return p;
  }

  /** A new Edge environment pointing its agents at this node. */
  async createEnv(name: string, extra: Record<string, unknown> = {}): Promise<CreatedEdge> {
    const env = await api(this.n.url, 'POST', '/api/endpoints', { token: this.token, body: { Name: name, EndpointCreationType: 4, URL: this.n.url, ...extra } });
    if (env.status !== 200) throw new Error(`environment not created: ${env.status} ${env.text}`);
    return env.body as CreatedEdge;
  }

  /** GET /api/endpoints/{id}{query} as the admin. */
  async getEnv(id: number, query = ''): Promise<any> {
    return (await api(this.n.url, 'GET', `/api/endpoints/${id}${query}`, { token: this.token })).body;
  }
}
