import fs from 'node:fs';
import path from 'node:path';
import { decodeEdgeKey, type EdgeKeyFields } from '../shared/crypto';

/** The agent's configuration, from Portainer's variable names (reference 1.3). */
export interface AgentConfig {
  edge: boolean;
  /** EDGE_ASYNC=1|true: no poll, no tunnel; everything over `POST /api/endpoints/edge/async`. */
  edgeAsync: boolean;
  edgeTunnel: boolean;
  edgeKey: string;
  key: EdgeKeyFields;
  edgeId: string;
  insecurePoll: boolean;
  /** EDGE_PUSH (default on): use the server's push channel when its replies offer one. */
  push: boolean;
  inactivityTimeoutMs: number;
  dockerHost: string;
  dataPath: string;
  agentVersion: string;
  logLevel: string;
}

/** Thrown once with every problem, so a misconfigured agent says all it needs at once. */
export class AgentConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid agent configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'AgentConfigError';
  }
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration such as `5m`, `90s`, `1h30m` or `250ms` into milliseconds. */
export function parseGoDuration(text: string): number {
  const re = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    matched = re.lastIndex;
  }
  if (!text || matched !== text.length) throw new Error(`invalid duration "${text}" (expected e.g. 5m, 90s, 1h30m)`);
  return total;
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());

/**
 * Reads EDGE, EDGE_ASYNC (async mode, default off), EDGE_PUSH (Capstan's push channel, default on), EDGE_TUNNEL, EDGE_KEY (or `<DATA_PATH>/agent_edge_key`), EDGE_ID,
 * EDGE_INSECURE_POLL, EDGE_INACTIVITY_TIMEOUT (default 5m), DOCKER_HOST (default the local
 * socket) and DATA_PATH (default /data). A key given in the environment is persisted to the data
 * path like Portainer's agent does, so a restart without it still enrols.
 */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const problems: string[] = [];
  const dataPath = env.DATA_PATH || '/data';
  const keyFile = path.join(dataPath, 'agent_edge_key');
  let edgeKey = (env.EDGE_KEY ?? '').trim();
  if (!edgeKey && fs.existsSync(keyFile)) edgeKey = fs.readFileSync(keyFile, 'utf8').trim();
  let key: EdgeKeyFields | undefined;
  if (!truthy(env.EDGE)) problems.push('EDGE: only Edge mode is supported; set EDGE=1');
  if (!edgeKey) problems.push(`EDGE_KEY: missing (set it, or put the key in ${keyFile})`);
  else {
    try {
      key = decodeEdgeKey(edgeKey);
      // A global key is usable in async mode: the server's reply names the environment (adopted, journaled).
      if (key.endpointId === 0 && !truthy(env.EDGE_ASYNC)) problems.push('EDGE_KEY: global keys (environment id 0) are only supported with EDGE_ASYNC=1; create the environment first');
    } catch (err) {
      problems.push(`EDGE_KEY: ${(err as Error).message}`);
    }
  }
  const edgeId = (env.EDGE_ID ?? '').trim();
  if (!edgeId) problems.push('EDGE_ID: missing (any stable identifier of this host, e.g. a UUID)');
  let inactivityTimeoutMs = 5 * 60_000;
  try {
    if (env.EDGE_INACTIVITY_TIMEOUT) inactivityTimeoutMs = parseGoDuration(env.EDGE_INACTIVITY_TIMEOUT.trim());
  } catch (err) {
    problems.push(`EDGE_INACTIVITY_TIMEOUT: ${(err as Error).message}`);
  }
  const dockerHost = env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  if (!/^(unix|tcp|http):\/\//.test(dockerHost)) problems.push(`DOCKER_HOST: expected unix:///path or tcp://host:port, got "${dockerHost}"`);
  if (problems.length) throw new AgentConfigError(problems);
  if (env.EDGE_KEY && edgeKey) {
    try {
      fs.mkdirSync(dataPath, { recursive: true });
      fs.writeFileSync(keyFile, edgeKey, { mode: 0o644 });
    } catch {
      // Persisting the key is a convenience for restarts; an unwritable DATA_PATH must not stop the agent.
    }
  }
  return {
    edge: true,
    edgeAsync: truthy(env.EDGE_ASYNC),
    edgeTunnel: env.EDGE_TUNNEL === undefined ? true : truthy(env.EDGE_TUNNEL),
    edgeKey, key: key!, edgeId,
    insecurePoll: truthy(env.EDGE_INSECURE_POLL),
    push: env.EDGE_PUSH === undefined || env.EDGE_PUSH.trim() === '' ? true : truthy(env.EDGE_PUSH),
    inactivityTimeoutMs, dockerHost, dataPath,
    agentVersion: '2.23.0',
    logLevel: env.LOG_LEVEL?.toLowerCase() || 'info',
  };
}
