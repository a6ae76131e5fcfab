/**
 * The server side of a load test: starting the embedded default or the distributed shape as child
 * processes, finding the processes of a running server, and collecting the server's warn/error log lines so slow
 * check-ins can be matched with them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Redis from 'ioredis';
import { Agent, request } from 'undici';
import { loadConfig } from '../../shared/config';
import { createBroker } from '../../shared/moleculer';
import { freePort, waitFor } from '../helpers/processes';
import { tempDataDir, uniqueNamespace } from '../helpers/ids';

// test/loadtest under jest, dist/test/loadtest when compiled.
const ROOT = [path.resolve(__dirname, '../..'), path.resolve(__dirname, '../../..')].find((d) => fs.existsSync(path.join(d, 'package.json')))!;
const MAIN = path.join(ROOT, 'dist/services/main.js');

/** A warn/error line of the server's log, or a line that is not pino's (a stack trace, a node warning). */
export interface ServerLogLine {
  /** Epoch ms; NaN when the line has no time. */
  time: number;
  level: 'warn' | 'error' | 'fatal' | 'stderr';
  msg: string;
}

const LEVELS: Record<number, ServerLogLine['level']> = { 40: 'warn', 50: 'error', 60: 'fatal' };

/**
 * Warnings the simulated fleet causes by design, never offered as the cause of a slow check-in:
 * every newly bound agent is asked for a tunnel for its first snapshot, and simulated agents
 * (but a storm's) open none.
 */
const EXPECTED = /^snapshots: first snapshot failed/;
const KEEP = 20_000;

/** Warn and error lines of pino JSON output, fed in chunks or lines. */
export class ServerLog {
  readonly lines: ServerLogLine[] = [];
  total = 0;
  warnOrWorse = 0;
  /** Of those, the ones the simulation causes by design (`EXPECTED`). */
  expected = 0;
  private rest = '';

  feed(chunk: string): void {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop()!;
    for (const line of parts) this.line(line);
  }

  line(line: string): void {
    if (!line) return;
    this.total++;
    // Cheap test first: at level info the server writes a couple of lines per request.
    const m = /"level":([0-9]+)/.exec(line.slice(0, 40));
    if (m) {
      const level = LEVELS[Number(m[1])];
      if (!level) return;
      this.warnOrWorse++;
      try {
        const o = JSON.parse(line);
        const time = typeof o.time === 'number' ? o.time : Date.parse(o.time);
        const msg = String(o.msg ?? '') + (o.err?.message ? `: ${o.err.message}` : typeof o.err === 'string' ? `: ${o.err}` : '');
        if (EXPECTED.test(msg)) {
          this.expected++;
          return;
        }
        this.keep({ time, level, msg });
      } catch {
        this.keep({ time: NaN, level, msg: line.slice(0, 300) });
      }
    } else if (!line.startsWith('{')) {
      // Not pino: node warnings, a crash's stack trace. Read after the run, so no time of its own.
      this.warnOrWorse++;
      this.keep({ time: NaN, level: 'stderr', msg: line.slice(0, 300) });
    }
  }

  private keep(l: ServerLogLine): void {
    if (this.lines.length < KEEP) this.lines.push(l);
  }

  /** The logged line nearest to [fromMs, toMs] (epoch), within `slackMs` of it (lines without a time never match). */
  nearest(fromMs: number, toMs: number, slackMs = 1000): ServerLogLine | undefined {
    let best: ServerLogLine | undefined;
    let bestD = Infinity;
    for (const l of this.lines) {
      const d = l.time < fromMs ? fromMs - l.time : l.time > toMs ? l.time - toMs : 0;
      if (d <= slackMs && d < bestD) {
        best = l;
        bestD = d;
      }
    }
    return best;
  }
}

/** Reads server logs (pino JSON lines), streaming; lines of several files (processes) are merged. */
export async function readServerLog(files: readonly string[]): Promise<ServerLog> {
  const log = new ServerLog();
  for (const file of files) {
    for await (const chunk of fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) log.feed(chunk as string);
    log.feed('\n');
  }
  log.lines.sort((a, b) => (a.time || 0) - (b.time || 0));
  return log;
}

/** One server process the load test started. */
export interface ServerProcess {
  name: string;
  pid: number;
  /** CAPSTAN_SERVICES of the process. */
  services: string;
  /** Its HTTPS port, when it runs a gateway. */
  port?: number;
  /** Its stdout and stderr. */
  logFile: string;
  child: ChildProcess;
}

/** The server the load test started: the embedded default, or the distributed shape. */
export interface LaunchedServer {
  shape: 'embedded' | 'distributed';
  /** API base URL of each gateway (one, or `gateways` in the distributed shape); the Edge keys name the first. */
  bases: string[];
  processes: ServerProcess[];
  dataDir: string;
  /** The distributed shape's Moleculer namespace (also its Redis key prefix). */
  namespace?: string;
  /** The data dir is kept (`LaunchOptions.dataDir`), with the ports and namespace a later run reuses. */
  kept: boolean;
  /** Stops every process, removes the data dir (logs included; unless kept) and the namespace's Redis keys. */
  stop(): Promise<void>;
}

export interface LaunchOptions {
  logLevel: string;
  nodeArgs: string[];
  /** Extra environment of every server process (each process's own keys win). */
  env?: Record<string, string>;
  /** Distributed shape: transporter and Redis. */
  nats?: string;
  redis?: string;
  /** Distributed shape: polling inside each gateway process rather than in two processes of its own. */
  pollingInGateways?: boolean;
  /** Distributed shape: gateway processes, each on its own port (default 2). */
  gateways?: number;
  /**
   * Keep the server's data here instead of a temporary dir, with its ports and namespace
   * (`loadtest-server.json`): a later run on the same dir starts on the same ports, so the Edge
   * keys of the environments it kept still name them (`--reuse`).
   */
  dataDir?: string;
}

/** What a kept data dir remembers of the server that used it. */
interface Layout {
  /** HTTPS ports of the gateways; the first is the API URL in the Edge keys. */
  ports: number[];
  tunnelPort: number;
  namespace: string;
}

const LAYOUT_FILE = 'loadtest-server.json';

/** Whether nothing listens on 127.0.0.1:port right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * The data dir, ports and namespace of a server to start: fresh ones in a temporary dir, or those
 * a kept dir remembers (ports it lacks, a new gateway's, are picked and remembered).
 */
async function layoutFor(o: LaunchOptions, prefix: string, gateways: number): Promise<Layout & { dataDir: string; kept: boolean }> {
  const taken = new Set<number>();
  const pick = async () => {
    let p = await freePort();
    while (taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  if (!o.dataDir) {
    const ports: number[] = [];
    for (let i = 0; i < gateways; i++) ports.push(await pick());
    return { dataDir: tempDataDir(prefix), ports, tunnelPort: await pick(), namespace: uniqueNamespace('lt'), kept: false };
  }
  const dataDir = path.resolve(o.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LAYOUT_FILE);
  let known: Partial<Layout> = {};
  if (fs.existsSync(file)) known = JSON.parse(fs.readFileSync(file, 'utf8')) as Layout;
  const ports = [...(known.ports ?? [])];
  for (const p of [...ports, known.tunnelPort ?? 0]) taken.add(p);
  for (const p of [...ports.slice(0, gateways), known.tunnelPort ?? 0]) {
    if (p && !(await portFree(p))) throw new Error(`port ${p} of the kept data dir ${dataDir} (${LAYOUT_FILE}) is in use: the environments' Edge keys name it, so the server must listen there again; free it, or use another --data-dir`);
  }
  while (ports.length < gateways) ports.push(await pick());
  const layout: Layout = { ports, tunnelPort: known.tunnelPort || await pick(), namespace: known.namespace || uniqueNamespace('lt') };
  fs.writeFileSync(file, `${JSON.stringify(layout, null, 1)}\n`);
  return { ...layout, ports: ports.slice(0, gateways), dataDir, kept: true };
}

/**
 * Starts `node dist/services/main.js` with the given env. Its output goes straight to a file, not
 * through a pipe the tester reads: a reader lagging behind must not slow the server down.
 */
function spawnServer(name: string, env: Record<string, string>, o: LaunchOptions, logFile: string): ServerProcess {
  // A kept data dir holds an earlier run's log: this run's starts afresh.
  const out = fs.openSync(logFile, 'w');
  const child = spawn(process.execPath, [...o.nodeArgs, MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CAPSTAN_LOG_LEVEL: o.logLevel, ...o.env, ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  return { name, pid: child.pid!, services: env.CAPSTAN_SERVICES ?? 'all', port: env.CAPSTAN_HTTPS_PORT ? Number(env.CAPSTAN_HTTPS_PORT) : undefined, logFile, child };
}

async function stopProcess(p: ServerProcess): Promise<void> {
  const { child } = p;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}

const exitedEarly = (p: ServerProcess) => (p.child.exitCode !== null || p.child.signalCode !== null ? `${p.name} exited (code ${p.child.exitCode}, signal ${p.child.signalCode})` : undefined);

function tail(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Waits until every gateway answers `/api/system/status` and the admin check (state and rbac
 * reached) and, in the distributed shape, every process's node is up with its services (seen by
 * an observer on the transporter: polling has no route to probe).
 */
async function waitReady(bases: string[], procs: ServerProcess[], timeoutMs: number, cluster?: { namespace: string; transporter: string; nodes: Record<string, string[]> }): Promise<void> {
  const probe = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    await waitFor(async () => {
      for (const p of procs) {
        const gone = exitedEarly(p);
        if (gone) throw new Error(gone);
      }
      for (const base of bases) {
        for (const path of ['/api/system/status', '/api/users/admin/check']) {
          const r = await request(`${base}${path}`, { dispatcher: probe });
          await r.body.dump();
          if (r.statusCode !== 200 && r.statusCode !== 204 && r.statusCode !== 404) return false;
        }
      }
      return true;
    }, timeoutMs, 'the server to answer');
  } finally {
    await probe.close();
  }
  if (!cluster) return;
  const observer = createBroker(loadConfig({}, { namespace: cluster.namespace, transporter: cluster.transporter, nodeID: `loadtest-observer-${process.pid}`, logLevel: 'warn' }));
  await observer.start();
  try {
    await waitFor(async () => {
      for (const p of procs) {
        const gone = exitedEarly(p);
        if (gone) throw new Error(gone);
      }
      return Object.entries(cluster.nodes).every(([nodeID, services]) => {
        const node = observer.registry.nodes.get(nodeID);
        return node?.available && services.every((svc) => node.services.some((s) => s.name === svc));
      });
    }, timeoutMs, 'every node of the distributed shape to be up with its services');
  } finally {
    await observer.stop();
  }
}

/** Starts the embedded default (every service in one process) on free ports with a temporary data dir. */
export async function startEmbeddedServer(o: LaunchOptions): Promise<LaunchedServer> {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const { dataDir, ports: [port], tunnelPort, kept } = await layoutFor(o, 'capstan-loadtest-', 1);
  const proc = spawnServer('embedded', {
    CAPSTAN_DATA_DIR: dataDir, CAPSTAN_HOST: '127.0.0.1', CAPSTAN_HTTPS_PORT: String(port), CAPSTAN_TUNNEL_PORT: String(tunnelPort),
  }, o, path.join(dataDir, 'server.log'));
  const server: LaunchedServer = {
    shape: 'embedded', bases: [`https://127.0.0.1:${port}`], processes: [proc], dataDir, kept,
    async stop() {
      await stopProcess(proc);
      if (!kept) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitReady(server.bases, server.processes, 60_000);
  } catch (err) {
    const last = tail(proc.logFile);
    await server.stop();
    throw new Error(`the embedded server did not start; its last output:\n${last}`, { cause: err });
  }
  return server;
}

/** Whether something accepts TCP connections at the URL's host and port. */
function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    s.setTimeout(2000);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

/** Gateway process names: gateway-a, gateway-b, ... gateway-z, gateway-27, ... */
export const gatewayName = (i: number): string => `gateway-${i < 26 ? String.fromCharCode(97 + i) : i + 1}`;

/**
 * Starts the distributed shape over NATS, on free ports with a temporary data dir and a namespace
 * of its own: `core` runs state (leader through the Redis lease), rbac, tunnel, snapshots and
 * commands; `polling-1` and `polling-2` the check-ins; `gateway-a`, `gateway-b`, ... (`gateways`,
 * default 2) the HTTPS API, each on its own port (with `pollingInGateways`, polling runs in each
 * gateway process instead).
 */
export async function startDistributedServer(o: LaunchOptions): Promise<LaunchedServer> {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const nats = o.nats ?? 'nats://127.0.0.1:4222';
  const redis = o.redis ?? 'redis://127.0.0.1:6379';
  for (const [what, url, port] of [['NATS', nats, 4222], ['Redis', redis, 6379]] as const) {
    if (!(await reachable(url, port))) throw new Error(`the distributed shape needs ${what} at ${url}: nothing answers there (--${what === 'NATS' ? 'nats' : 'redis'} URL)`);
  }
  const { dataDir, ports, tunnelPort, namespace, kept } = await layoutFor(o, 'capstan-loadtest-dist-', o.gateways ?? 2);
  const common = {
    CAPSTAN_NAMESPACE: namespace, CAPSTAN_TRANSPORTER: nats, REDIS_URL: redis, CAPSTAN_DATA_DIR: dataDir,
    CAPSTAN_HOST: '127.0.0.1', CAPSTAN_TUNNEL_PORT: String(tunnelPort),
  };
  const logs = path.join(dataDir, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  const procs: ServerProcess[] = [];
  const nodes: Record<string, string[]> = {};
  const start = (name: string, env: Record<string, string>) => {
    nodes[`${namespace}-${name}`] = env.CAPSTAN_SERVICES.split(',').filter((svc) => svc !== 'gateway');
    procs.push(spawnServer(name, { ...common, CAPSTAN_NODE_ID: `${namespace}-${name}`, ...env }, o, path.join(logs, `${name}.log`)));
  };
  start('core', { CAPSTAN_SERVICES: 'state,rbac,tunnel,snapshots,commands' });
  if (!o.pollingInGateways) {
    start('polling-1', { CAPSTAN_SERVICES: 'polling' });
    start('polling-2', { CAPSTAN_SERVICES: 'polling' });
  }
  // Each gateway generates its own self-signed certificate: separate data dirs.
  const gateway = o.pollingInGateways ? 'gateway,polling' : 'gateway';
  ports.forEach((port, i) => start(gatewayName(i), { CAPSTAN_SERVICES: gateway, CAPSTAN_HTTPS_PORT: String(port), CAPSTAN_DATA_DIR: path.join(dataDir, gatewayName(i)) }));
  const server: LaunchedServer = {
    shape: 'distributed', bases: ports.map((port) => `https://127.0.0.1:${port}`), processes: procs, dataDir, namespace, kept,
    async stop() {
      // Gateways first, so nothing is left calling the services that go away.
      await Promise.all(procs.filter((p) => p.services.startsWith('gateway')).map(stopProcess));
      await Promise.all(procs.map(stopProcess));
      await deleteRedisKeys(redis, `${namespace}:*`).catch(() => undefined);
      if (!kept) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitReady(server.bases, procs, 90_000, { namespace, transporter: nats, nodes });
  } catch (err) {
    const last = procs.map((p) => `--- ${p.name} (${p.services})${exitedEarly(p) ? `: ${exitedEarly(p)}` : ''}\n${tail(p.logFile, 15)}`).join('\n');
    await server.stop();
    throw new Error(`the distributed shape did not start (${(err as Error).message}); the processes' last output:\n${last}`, { cause: err });
  }
  return server;
}

async function deleteRedisKeys(url: string, pattern: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Socket inodes listening on `port` (IPv4 and IPv6). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1].split(':')[1], 16) === port) inodes.add(f[9]);
    }
  }
  return inodes;
}

function readProc(pid: string, what: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${what}`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The local server processes of the deployment serving `port`: the `dist/services/main.js` process
 * listening on it, plus (distributed shape) the processes sharing its transporter and namespace.
 * Other Capstan processes on the machine (someone else's tests) are left out.
 */
export function detectServerPids(port: number): { pids: number[]; note: string } {
  const inodes = listeningInodes(port);
  const candidates = fs.readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d) && d !== String(process.pid) && readProc(d, 'cmdline').includes('dist/services/main.js'));
  const listener = candidates.find((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
          return !!m && inodes.has(m[1]);
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
  if (!listener) return { pids: [], note: `no local dist/services/main.js process listens on port ${port}: server CPU/RSS not sampled (use --server-pids)` };
  const envOf = (pid: string) => Object.fromEntries(readProc(pid, 'environ').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const own = envOf(listener);
  if (!own.CAPSTAN_TRANSPORTER) return { pids: [Number(listener)], note: `server process ${listener} (listens on ${port})` };
  const peers = candidates.filter((pid) => {
    const e = envOf(pid);
    return e.CAPSTAN_TRANSPORTER === own.CAPSTAN_TRANSPORTER && (e.CAPSTAN_NAMESPACE ?? '') === (own.CAPSTAN_NAMESPACE ?? '');
  });
  return { pids: peers.map(Number), note: `server processes ${peers.join(', ')} (${listener} listens on ${port}; the others share its transporter and namespace)` };
}
