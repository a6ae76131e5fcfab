import os from 'node:os';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** Every service a process can run; `CAPSTAN_SERVICES=all` runs all of them. */
export const SERVICE_NAMES = ['gateway', 'state', 'rbac', 'polling', 'tunnel', 'snapshots', 'commands', 'audit', 'backup'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const Port = Type.Integer({ minimum: 0, maximum: 65535 });

/** The validated, frozen configuration of one Capstan process. */
export const ConfigSchema = Type.Object({
  services: Type.Array(Type.Union(SERVICE_NAMES.map((n) => Type.Literal(n))), { minItems: 1 }),
  nodeID: Type.String({ minLength: 1 }),
  namespace: Type.String({ pattern: '^[A-Za-z0-9_-]+$' }),
  transporter: Type.String(),
  dataDir: Type.String({ minLength: 1 }),
  host: Type.String({ minLength: 1 }),
  httpsPort: Port,
  tlsCert: Type.String(),
  tlsKey: Type.String(),
  tunnelPort: Port,
  tunnelHost: Type.String(),
  tunnelIdleMs: Type.Integer({ minimum: 1000 }),
  /** CAPSTAN_TUNNEL_DATA_HOST: address the tunnel node's internal data listener binds to. */
  tunnelDataHost: Type.String({ minLength: 1 }),
  /** CAPSTAN_TUNNEL_DATA_PORT: its port (0: a free one). */
  tunnelDataPort: Port,
  /** CAPSTAN_TUNNEL_DATA_ADVERTISE: the host other processes connect to; empty: derived from the bind address. */
  tunnelDataAdvertise: Type.String(),
  publicUrl: Type.String(),
  redisUrl: Type.String(),
  mongodbUrl: Type.String(),
  mongodbDatabase: Type.String({ minLength: 1 }),
  election: Type.Union([Type.Literal('local'), Type.Literal('redis')]),
  leaseTtlMs: Type.Integer({ minimum: 500, maximum: 60000 }),
  requestTimeoutMs: Type.Integer({ minimum: 100 }),
  bodyLimit: Type.Integer({ minimum: 1024 }),
  authRateLimit: Type.Integer({ minimum: 1 }),
  authRateWindowMs: Type.Integer({ minimum: 1000 }),
  /** CAPSTAN_PUSH: offer the push channel to Capstan agents. */
  push: Type.Boolean(),
  /** CAPSTAN_CHECKIN_BATCH_MS: how long a gateway gathers check-ins for a polling replica in another process (0: one call each). */
  checkinBatchMs: Type.Integer({ minimum: 0, maximum: 100 }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
});
export type Config = Readonly<Static<typeof ConfigSchema>>;

/** Documentation of every environment key: the README table is checked against this list. */
export const CONFIG_KEYS: ReadonlyArray<{ key: string; default: string; description: string }> = [
  { key: 'CAPSTAN_SERVICES', default: 'all', description: 'Comma-separated services this process runs: gateway, state, rbac, polling, tunnel, snapshots, commands, audit, backup, or all.' },
  { key: 'CAPSTAN_NODE_ID', default: '<hostname>-<pid>', description: 'Moleculer node ID of this process; must be unique in the cluster.' },
  { key: 'CAPSTAN_NAMESPACE', default: 'capstan', description: 'Moleculer namespace; also prefixes Redis keys. Processes only see peers in the same namespace.' },
  { key: 'CAPSTAN_TRANSPORTER', default: '(empty: in-process)', description: 'Transporter URL for the distributed shape, e.g. nats://127.0.0.1:4222. Empty runs everything in one process.' },
  { key: 'CAPSTAN_DATA_DIR', default: './data', description: 'Data directory: embedded stores, generated TLS certificate.' },
  { key: 'CAPSTAN_HOST', default: '0.0.0.0', description: 'Address the HTTPS API listens on.' },
  { key: 'CAPSTAN_HTTPS_PORT', default: '9443', description: 'HTTPS API port (0 picks a free port).' },
  { key: 'CAPSTAN_TLS_CERT', default: '(generated)', description: 'PEM certificate file for the API; empty uses a self-signed one generated on first start in <data>/certs.' },
  { key: 'CAPSTAN_TLS_KEY', default: '(generated)', description: 'PEM private key file matching CAPSTAN_TLS_CERT.' },
  { key: 'CAPSTAN_TUNNEL_PORT', default: '8000', description: 'Tunnel server port, advertised in Edge keys.' },
  { key: 'CAPSTAN_TUNNEL_IDLE_MS', default: '270000', description: 'A tunnel without activity for this long is closed (agents close theirs after EDGE_INACTIVITY_TIMEOUT, 5m).' },
  { key: 'CAPSTAN_TUNNEL_HOST', default: '(host of the API URL)', description: 'Host advertised for the tunnel server in Edge keys, when it differs from the API URL host.' },
  { key: 'CAPSTAN_TUNNEL_DATA_HOST', default: '127.0.0.1', description: 'Address the tunnel node\'s internal data listener binds to: gateways and snapshots services in other processes reach agents through it (never agents; keep it off public networks). 0.0.0.0 when they run on other hosts.' },
  { key: 'CAPSTAN_TUNNEL_DATA_PORT', default: '0 (a free port)', description: 'Port of that data listener; tunnel nodes advertise it with their routes, so any free port works. Fix it where a firewall or network policy must name it.' },
  { key: 'CAPSTAN_TUNNEL_DATA_ADVERTISE', default: '(the bind address; for 0.0.0.0 the first external IPv4 address)', description: 'Host other processes use to reach the data listener, e.g. the pod IP or a Compose service name.' },
  { key: 'CAPSTAN_PUBLIC_URL', default: '(empty)', description: 'API URL put into Edge keys when an Edge environment is created without URL.' },
  { key: 'REDIS_URL', default: 'redis://127.0.0.1:6379', description: 'Redis, used for the state leader lease (CAPSTAN_ELECTION=redis) and shared rate limits.' },
  { key: 'MONGODB_URL', default: '(empty: embedded store)', description: 'MongoDB connection string (replica set); when set the state service uses MongoDB instead of the embedded LMDB store.' },
  { key: 'MONGODB_DATABASE', default: 'capstan', description: 'MongoDB database for the main store; the audit store uses <name>_audit.' },
  { key: 'CAPSTAN_ELECTION', default: 'local, or redis when CAPSTAN_TRANSPORTER is set', description: 'How state replicas elect their writer: local (one process) or redis (lease with fencing token).' },
  { key: 'CAPSTAN_LEASE_TTL_MS', default: '2000', description: 'Leader lease time-to-live; a new leader serves at most about this long after the old one dies.' },
  { key: 'CAPSTAN_REQUEST_TIMEOUT_MS', default: '10000', description: 'Timeout of calls between services.' },
  { key: 'CAPSTAN_BODY_LIMIT', default: '1048576', description: 'Largest accepted request body in bytes (413 above).' },
  { key: 'CAPSTAN_AUTH_RATE_LIMIT', default: '10', description: 'Sign-in attempts allowed per client address per window (429 above).' },
  { key: 'CAPSTAN_AUTH_RATE_WINDOW_MS', default: '60000', description: 'Window of CAPSTAN_AUTH_RATE_LIMIT.' },
  { key: 'CAPSTAN_PUSH', default: '1', description: 'Offer the push channel (README "Push channel") to Capstan agents: 1 or 0. With 0 check-ins carry no X-Capstan-Push header and agents keep polling.' },
  { key: 'CAPSTAN_CHECKIN_BATCH_MS', default: '2', description: 'A gateway whose polling runs in another process sends it the check-ins of this many milliseconds in one call (0: one call per check-in). Longer windows cost check-ins latency and save CPU in the gateway, polling and NATS.' },
  { key: 'CAPSTAN_LOG_LEVEL', default: 'info', description: 'pino log level: fatal, error, warn, info, debug, trace, silent.' },
];

/** Thrown once with every problem found in the environment. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function int(env: NodeJS.ProcessEnv, key: string, def: number, problems: string[]): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n)) {
    problems.push(`${key}: expected an integer, got "${raw}"`);
    return def;
  }
  return n;
}

function flag(env: NodeJS.ProcessEnv, key: string, def: boolean, problems: string[]): boolean {
  const raw = env[key]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return def;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  problems.push(`${key}: expected 1 or 0, got "${env[key]}"`);
  return def;
}

/**
 * Reads the environment once, applies defaults, validates, and returns a frozen config.
 * `overrides` let tests and the composition root set values without touching process.env.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Static<typeof ConfigSchema>> = {}): Config {
  const problems: string[] = [];
  const servicesRaw = (env.CAPSTAN_SERVICES ?? 'all').trim();
  const services = servicesRaw === 'all' || servicesRaw === ''
    ? [...SERVICE_NAMES]
    : servicesRaw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of services) if (!(SERVICE_NAMES as readonly string[]).includes(s)) problems.push(`CAPSTAN_SERVICES: unknown service "${s}" (known: ${SERVICE_NAMES.join(', ')})`);
  const transporter = env.CAPSTAN_TRANSPORTER ?? '';
  const candidate = {
    services: [...new Set(services)],
    nodeID: env.CAPSTAN_NODE_ID || `${os.hostname()}-${process.pid}`,
    namespace: env.CAPSTAN_NAMESPACE || 'capstan',
    transporter,
    dataDir: path.resolve(env.CAPSTAN_DATA_DIR || './data'),
    host: env.CAPSTAN_HOST || '0.0.0.0',
    httpsPort: int(env, 'CAPSTAN_HTTPS_PORT', 9443, problems),
    tlsCert: env.CAPSTAN_TLS_CERT ?? '',
    tlsKey: env.CAPSTAN_TLS_KEY ?? '',
    tunnelPort: int(env, 'CAPSTAN_TUNNEL_PORT', 8000, problems),
    tunnelHost: env.CAPSTAN_TUNNEL_HOST ?? '',
    tunnelIdleMs: int(env, 'CAPSTAN_TUNNEL_IDLE_MS', 270_000, problems),
    tunnelDataHost: env.CAPSTAN_TUNNEL_DATA_HOST || '127.0.0.1',
    tunnelDataPort: int(env, 'CAPSTAN_TUNNEL_DATA_PORT', 0, problems),
    tunnelDataAdvertise: env.CAPSTAN_TUNNEL_DATA_ADVERTISE ?? '',
    publicUrl: env.CAPSTAN_PUBLIC_URL ?? '',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    mongodbUrl: env.MONGODB_URL ?? '',
    mongodbDatabase: env.MONGODB_DATABASE || 'capstan',
    election: env.CAPSTAN_ELECTION || (transporter ? 'redis' : 'local'),
    leaseTtlMs: int(env, 'CAPSTAN_LEASE_TTL_MS', 2000, problems),
    requestTimeoutMs: int(env, 'CAPSTAN_REQUEST_TIMEOUT_MS', 10000, problems),
    bodyLimit: int(env, 'CAPSTAN_BODY_LIMIT', 1048576, problems),
    authRateLimit: int(env, 'CAPSTAN_AUTH_RATE_LIMIT', 10, problems),
    authRateWindowMs: int(env, 'CAPSTAN_AUTH_RATE_WINDOW_MS', 60000, problems),
    push: flag(env, 'CAPSTAN_PUSH', true, problems),
    checkinBatchMs: int(env, 'CAPSTAN_CHECKIN_BATCH_MS', 2, problems),
    logLevel: env.CAPSTAN_LOG_LEVEL || 'info',
    ...overrides,
  };
  if ((candidate.tlsCert === '') !== (candidate.tlsKey === '')) problems.push('CAPSTAN_TLS_CERT and CAPSTAN_TLS_KEY must be set together');
  for (const e of Value.Errors(ConfigSchema, candidate)) problems.push(`${e.path.slice(1) || 'config'}: ${e.message} (got ${JSON.stringify(e.value)})`);
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(candidate as Static<typeof ConfigSchema>);
}
