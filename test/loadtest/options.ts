import os from 'node:os';
import { parseArgs } from 'node:util';
import { MODES } from './modes';
import { AGENTS_PER_PROCESS } from './workers';

/** The load test's command line, validated. */
export interface LoadTestOptions {
  agents: number;
  /** Check-in interval the environments are given and agents start with, s. */
  intervalS: number;
  /** Check-ins are started during this long, s (ramp-up included). Push mode: the idle phase, every channel open. */
  durationS: number;
  /** First check-ins are spread uniformly over this long, s. */
  rampS: number;
  /**
   * Check-ins started before this are warm-up: in the totals, not in the steady state the targets
   * are judged on. Undefined: the ramp, extended until every agent's first check-in has ended.
   */
  warmupS?: number;
  mode: string;
  /** API base URL, or undefined to start an embedded server. */
  target?: string;
  insecure: boolean;
  apiKey?: string;
  username: string;
  password: string;
  report?: string;
  reuse: boolean;
  workers: number;
  /** Tester processes (undefined: as many as the open-file limit needs, see workers.ts). */
  processes?: number;
  timeoutMs: number;
  /** Check-ins slower than this are listed one by one. */
  slowMs: number;
  /** Concurrent requests when creating or updating environments. */
  concurrency: number;
  serverLog?: string;
  serverPids?: number[];
  serverLogLevel: string;
  serverNodeArgs: string[];
  /** Environment of the server process(es) the tester starts, e.g. CAPSTAN_CHECKIN_BATCH_MS. */
  serverEnv: Record<string, string>;
  /** Copy the started server's logs (one per process) into this directory before it is removed. */
  keepServerLogs?: string;
  /** embedded: one process with every service; distributed: state+workers, two polling, two gateways over NATS. */
  shape: 'embedded' | 'distributed';
  /** Distributed shape: polling runs inside each gateway process instead of two processes of its own. */
  pollingInGateways: boolean;
  /** Distributed shape: gateway processes. */
  gateways: number;
  /** Keep the started server's data (and ports) here, for a later --reuse. */
  dataDir?: string;
  /** Transporter and Redis of the distributed shape. */
  nats: string;
  redis: string;
  /** Tunnel storm: this many environments made REQUIRED at once (0: none). */
  storm: number;
  /** When the storm is fired, s after the start; undefined: 10 s after the fleet is up, at the latest `stormLatestS`. */
  stormAtS?: number;
  /** The latest start that leaves the storm time to complete and be measured. */
  stormLatestS: number;
  /** Docker API path each storm call asks for (through the tunnel). */
  stormPath: string;
  /** A storm call without an answer by then fails. */
  stormTimeoutMs: number;
  /**
   * Push mode: environments made REQUIRED after the idle phase (0: none); undefined: every agent's.
   */
  pushRequired?: number;
  /** Push mode: how long to wait for every channel to open, and for every requested agent to receive REQUIRED, s. */
  openTimeoutS: number;
  pushTimeoutS: number;
}

/**
 * Push mode's default ramp, agents started per second: each makes a check-in and the channel's
 * handshake, two full TLS handshakes, which the tester and the server share two cores for here.
 */
export const PUSH_RAMP_PER_S = 250;

export const USAGE = `npm run loadtest -- [options]

Simulates Edge agents checking in, each on its own keep-alive TLS connection, and reports
throughput, latency, errors, bytes per check-in and server CPU/RSS against the targets
(>= 99.9 % answered, p99 <= 50 ms, server CPU <= 1 core on average, in the steady state).

  --agents N            simulated agents (default 15000)
  --interval S          check-in interval given to the environments, s (default 5)
  --duration S          how long agents check in, s, ramp-up included (default 120); --mode push:
                        the idle phase, measured once every push channel is open
  --ramp S              first check-ins spread uniformly over S s (default: one interval; --mode push:
                        at least agents / ${PUSH_RAMP_PER_S} s, since each agent then makes two TLS handshakes)
  --warmup S            check-ins started before S s are warm-up, excluded from the steady
                        state and the targets (default: the ramp, extended until every agent
                        has had a check-in answered, plus one interval; at most half the run)
  --mode M              ${Object.values(MODES).map((m) => `${m.name}: ${m.summary}`).join('\n                        ')}
  --target URL          a running server (default: start the embedded default on a free port
                        with a temporary data dir, and its admin)
  --insecure            accept a self-signed certificate (implied for the embedded server)
  --api-key KEY         admin API key, or
  --username U --password P   admin credentials (default admin / the embedded server's)
  --reuse               use the environments named loadtest-* made by an earlier run (and
                        their Edge IDs), creating only the missing ones
  --workers N           worker threads running agents (default: cores - 1, at least 1)
  --processes N         run the agents in N child processes instead of threads (default: one
                        process while the agents fit in ${AGENTS_PER_PROCESS}, else enough processes that
                        none holds more: threads share the process's open-file limit)
  --timeout MS          a check-in without a full answer by then fails (default 10000, the
                        Portainer agent's HTTP timeout)
  --slow-ms MS          check-ins slower than this are listed one by one (default 1000)
  --concurrency N       parallel API requests while creating environments (default 32)
  --report FILE         write the full report as JSON
  --server-log FILE     the server's log (pino JSON lines), to explain slow check-ins (with --target)
  --server-pids P,Q     server processes to sample CPU/RSS from (default: the embedded server, or
                        local processes running dist/services/main.js that serve the target port)
  --server-log-level L  log level of the embedded server (default info, its default)
  --server-node-args A  node options for the server process(es), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  --server-env K=V,..   environment of the server process(es) the tester starts, e.g.
                        CAPSTAN_CHECKIN_BATCH_MS=5 (README "Configuration")
  --keep-server-logs D  copy the started server's log(s) into directory D (its data dir is removed)
  --shape S             embedded (default): one process, every service; distributed: the tester
                        starts the distributed shape over NATS: one state+rbac+tunnel+snapshots+
                        commands process, two polling processes and --gateways gateways (2) on
                        ports of their own, the agents split between them (an L4 balancer's job)
  --gateways N          distributed shape: gateway processes, each on its own port, the agents split
                        between them (default 2). One holds a socket per agent: at most about
                        ${AGENTS_PER_PROCESS} agents each under a 20,000 open-file limit, and about 27,000
                        (source ports towards one port) under Linux's default ephemeral range
  --polling-in-gateways distributed shape: each gateway process runs polling too (CAPSTAN_SERVICES=
                        gateway,polling), instead of two polling processes: check-ins stay in-process
  --data-dir DIR        keep the started server's data in DIR (created if missing) instead of a
                        temporary dir, with its ports: a later run with --data-dir DIR --reuse finds
                        its environments and starts the server where their Edge keys point
  --nats URL            NATS of the distributed shape (default nats://127.0.0.1:4222)
  --redis URL           Redis of the distributed shape (default redis://127.0.0.1:6379)
  --storm N             tunnel storm (--mode poll): at --storm-at, N environments are made REQUIRED at
                        once by N concurrent Docker API calls through the public API; their simulated
                        agents open the real chisel tunnel (agent/tunnel) to a responder in the
                        tester. Reports time until every call answered, failures, memory per tunnel
  --storm-at S          when the storm is fired, s after the start (default: 10 s after every agent
                        has had a check-in answered, at the latest when 2 intervals + 20 s remain)
  --storm-path P        Docker API path of each call (default /_ping; /version also answers)
  --storm-timeout MS    a storm call without an answer by then fails (default 60000)
  --push-required N     --mode push: after the idle phase, N environments (spread over the agents;
                        0: none) are made REQUIRED at once, one Docker API call each pipelined on
                        --concurrency connections; measured until their agents received the
                        REQUIRED status by push. Default: every one (tunnel ports are virtual:
                        a tunnel node holds 64,512 tunnels at once)
  --open-timeout S      --mode push: longest wait, from the start, for every channel to be open
                        before the idle phase starts anyway (default the ramp + 120 s, at least 300)
  --push-timeout S      --mode push: longest wait for every REQUIRED to arrive (default 60)
`;

/** Parses argv; throws one error listing every problem. */
export function parseOptions(argv: string[]): LoadTestOptions | 'help' {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      agents: { type: 'string', default: '15000' },
      interval: { type: 'string', default: '5' },
      duration: { type: 'string', default: '120' },
      ramp: { type: 'string' },
      warmup: { type: 'string' },
      mode: { type: 'string', default: 'poll' },
      target: { type: 'string' },
      insecure: { type: 'boolean', default: false },
      'api-key': { type: 'string' },
      username: { type: 'string', default: 'admin' },
      password: { type: 'string' },
      report: { type: 'string' },
      reuse: { type: 'boolean', default: false },
      workers: { type: 'string' },
      processes: { type: 'string' },
      timeout: { type: 'string', default: '10000' },
      'slow-ms': { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '32' },
      'server-log': { type: 'string' },
      'server-pids': { type: 'string' },
      'server-log-level': { type: 'string', default: 'info' },
      'server-node-args': { type: 'string', default: '' },
      'server-env': { type: 'string', default: '' },
      'keep-server-logs': { type: 'string' },
      shape: { type: 'string', default: 'embedded' },
      'polling-in-gateways': { type: 'boolean', default: false },
      gateways: { type: 'string' },
      'data-dir': { type: 'string' },
      'push-required': { type: 'string' },
      'open-timeout': { type: 'string' },
      'push-timeout': { type: 'string', default: '60' },
      nats: { type: 'string', default: 'nats://127.0.0.1:4222' },
      redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
      storm: { type: 'string', default: '0' },
      'storm-at': { type: 'string' },
      'storm-path': { type: 'string', default: '/_ping' },
      'storm-timeout': { type: 'string', default: '60000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (v.help) return 'help';
  const problems: string[] = [];
  const int = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) problems.push(`--${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
    return n;
  };
  const num = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) problems.push(`--${name} must be a number >= ${min} (got ${JSON.stringify(raw)})`);
    return n;
  };
  const agents = int('agents', v.agents, 1);
  // The server's check-in interval is whole seconds (EdgeCheckinInterval).
  const intervalS = int('interval', v.interval, 1);
  const durationS = num('duration', v.duration, 1);
  const push = v.mode === 'push';
  const rampS = v.ramp !== undefined ? num('ramp', v.ramp, 0) : push ? Math.max(intervalS, Math.ceil(agents / PUSH_RAMP_PER_S)) : intervalS;
  const warmupS = v.warmup === undefined ? undefined : num('warmup', v.warmup, 0);
  if (rampS >= durationS && !push) problems.push(`--ramp (${rampS} s) must be shorter than --duration (${durationS} s)`);
  if (warmupS !== undefined && warmupS >= durationS) problems.push(`--warmup (${warmupS} s) must be shorter than --duration (${durationS} s): nothing would be left to measure`);
  const cores = os.availableParallelism();
  const workers = v.workers === undefined ? Math.max(1, cores - 1) : int('workers', v.workers, 1);
  const processes = v.processes === undefined ? undefined : int('processes', v.processes, 1);
  if (!MODES[v.mode]) problems.push(`--mode must be one of ${Object.keys(MODES).join(', ')} (got ${JSON.stringify(v.mode)})`);
  let target: string | undefined;
  if (v.target !== undefined) {
    try {
      const u = new URL(v.target);
      if (u.protocol !== 'https:') problems.push('--target must be an https:// URL (agents check in over TLS)');
      target = u.origin;
    } catch {
      problems.push(`--target is not a URL: ${JSON.stringify(v.target)}`);
    }
    if (!v['api-key'] && !v.password) problems.push('--target needs admin credentials: --api-key, or --username and --password');
  }
  let serverPids: number[] | undefined;
  if (v['server-pids'] !== undefined) {
    serverPids = v['server-pids'].split(',').map((s) => Number(s.trim()));
    if (!serverPids.length || serverPids.some((p) => !Number.isInteger(p) || p <= 0)) problems.push('--server-pids must be a comma-separated list of process ids');
  }
  if (v['server-log'] !== undefined && !target) problems.push('--server-log is for --target: the embedded server\'s output is captured directly');
  const timeoutMs = int('timeout', v.timeout, 1);
  const slowMs = num('slow-ms', v['slow-ms'], 0);
  const concurrency = int('concurrency', v.concurrency, 1);
  const shape = v.shape as LoadTestOptions['shape'];
  if (shape !== 'embedded' && shape !== 'distributed') problems.push(`--shape must be embedded or distributed (got ${JSON.stringify(v.shape)})`);
  if (shape === 'distributed' && target) problems.push('--shape distributed starts its own processes: it does not go with --target');
  if (v['polling-in-gateways'] && shape !== 'distributed') problems.push('--polling-in-gateways is for --shape distributed');
  const gateways = v.gateways === undefined ? 2 : int('gateways', v.gateways, 1);
  if (v.gateways !== undefined && shape !== 'distributed') problems.push('--gateways is for --shape distributed (the embedded server is one process)');
  if (v['data-dir'] !== undefined && target) problems.push('--data-dir is for a server the tester starts, not --target');
  const pushRequired = v['push-required'] === undefined ? undefined : int('push-required', v['push-required'], 0);
  if (!push && pushRequired !== undefined) problems.push('--push-required is for --mode push');
  if (pushRequired !== undefined && pushRequired > agents) problems.push(`--push-required (${pushRequired}) cannot exceed --agents (${agents})`);
  // The last agents start at the end of the ramp: the wait must outlast it.
  const openTimeoutS = v['open-timeout'] === undefined ? Math.max(300, Math.ceil(rampS) + 120) : num('open-timeout', v['open-timeout'], 1);
  if (push && v['open-timeout'] !== undefined && openTimeoutS <= rampS) problems.push(`--open-timeout (${openTimeoutS} s) must be longer than the ramp (${rampS} s): the last agents only start then`);
  const pushTimeoutS = num('push-timeout', v['push-timeout'], 1);
  const storm = int('storm', v.storm, 0);
  const stormNeedS = 2 * intervalS + 5 + 15;
  const stormAtS = v['storm-at'] === undefined ? undefined : num('storm-at', v['storm-at'], 0);
  const stormTimeoutMs = int('storm-timeout', v['storm-timeout'], 1);
  const stormPath = v['storm-path'].startsWith('/') ? v['storm-path'] : `/${v['storm-path']}`;
  if (storm > 0) {
    if (v.mode !== 'poll') problems.push('--storm needs --mode poll (tunnels are asked for through the standard check-in)');
    if (storm > agents) problems.push(`--storm (${storm}) cannot exceed --agents (${agents})`);
    // Agents see REQUIRED at their next check-in; the server gives them 2 intervals + 5 s.
    if (durationS - (stormAtS ?? rampS) < stormNeedS) problems.push(`--storm-at (${stormAtS ?? rampS} s) must leave at least ${stormNeedS} s of the ${durationS} s run (two check-in intervals + 5 s for the tunnels, 15 s to measure them open)`);
  }
  const serverEnv: Record<string, string> = {};
  for (const kv of v['server-env'].split(',').filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq > 0 && /^[A-Z][A-Z0-9_]*$/.test(kv.slice(0, eq))) serverEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
    else problems.push(`--server-env takes KEY=VALUE pairs separated by commas (got ${JSON.stringify(kv)})`);
  }
  if (Object.keys(serverEnv).length && target) problems.push('--server-env is for a server the tester starts, not --target');
  if (problems.length) throw new Error(`invalid options:\n  ${problems.join('\n  ')}\n\n${USAGE}`);
  return {
    agents, intervalS, durationS, rampS, warmupS, mode: v.mode, target,
    insecure: v.insecure || !target,
    apiKey: v['api-key'], username: v.username, password: v.password ?? 'loadtest-password-123',
    report: v.report, reuse: v.reuse, workers: Math.min(workers, agents), processes,
    timeoutMs, slowMs, concurrency,
    serverLog: v['server-log'], serverPids, serverLogLevel: v['server-log-level'],
    serverNodeArgs: v['server-node-args'].split(/\s+/).filter(Boolean), serverEnv, keepServerLogs: v['keep-server-logs'],
    shape, pollingInGateways: v['polling-in-gateways'], gateways, dataDir: v['data-dir'], pushRequired, openTimeoutS, pushTimeoutS, nats: v.nats, redis: v.redis, storm, stormAtS, stormLatestS: durationS - stormNeedS, stormPath, stormTimeoutMs,
  };
}
