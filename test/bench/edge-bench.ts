/**
 * Edge benchmark: a real server process, a real agent process and the host's Docker engine.
 *
 *   npm run bench:edge -- [--rounds 5] [--requests 1000] [--log-mb 300] [--log-runs 3] [--log-drivers local,json-file]
 *                         [--echoes 200] [--idle-ms 10000] [--sections 1,2,3,4] [--node-options OPTS]
 *
 * It measures, each through Capstan (`/api/endpoints/{id}/docker/...`, HTTPS, X-API-Key) and, for
 * comparison, straight from /var/run/docker.sock:
 *   1. the first Docker call on an idle environment (check-in interval 5 s): tunnel opened on demand;
 *   2. `GET /containers/json?all=1` latency, sequential, one keep-alive connection each;
 *   3. `GET /containers/{id}/logs?stdout=1` throughput of a finished container's large log, once
 *      per log driver (`local`, Docker's compact binary format, and `json-file`, the default,
 *      whose JSON decoding in dockerd costs about as much CPU as the whole tunnel), with the CPU
 *      time each process spent on every run (dockerd, server, agent, this client; from /proc) in
 *      cores and in CPU milliseconds per MB, which a contended machine moves far less than MB/s;
 *   4. interactive exec: keystroke → echo round trip of `cat` under a TTY over the hijacked stream.
 * Latencies are p50/p99 (max for 1), throughput in MB/s with 1 MB = 10^6 bytes. Section 1 waits
 * for the server to close the idle tunnel each round, so --idle-ms (CAPSTAN_TUNNEL_IDLE_MS) is
 * short, but it must stay well above the check-in interval: the server reaps a tunnel the agent
 * has not connected yet once it is older than that, and the waiting call then times out.
 * It runs `infra/ensure-docker.sh` and `infra/ensure-test-image.sh` first (both idempotent), and
 * removes its containers, processes and temporary directories even when it fails. `--sections 3`
 * runs only the log section (no idle rounds); `--node-options` is NODE_OPTIONS for the server and
 * the agent, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" for their V8 CPU profiles.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { parseArgs, promisify } from 'node:util';
import { Agent, request, type Dispatcher } from 'undici';
import { api } from '../helpers/http';
import { tempDataDir } from '../helpers/ids';
import { adminToken, startBenchServer } from '../helpers/server';
import { AGENT_MAIN, startProcess, waitFor, type CapstanProcess } from '../helpers/processes';
import { cpuLine, dockerdPid, msPerMb, peakRssMb, withCpu, type CpuSet, type LogRun } from './cpu';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    requests: { type: 'string', default: '1000' },
    'log-mb': { type: 'string', default: '300' },
    'log-runs': { type: 'string', default: '3' },
    'log-drivers': { type: 'string', default: 'local,json-file' },
    echoes: { type: 'string', default: '200' },
    'idle-ms': { type: 'string', default: '10000' },
    sections: { type: 'string', default: '1,2,3,4' },
    'node-options': { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const REQUESTS = Number(args.requests);
const LOG_BYTES = Number(args['log-mb']) * 1e6;
const LOG_RUNS = Number(args['log-runs']);
const ECHOES = Number(args.echoes);
const IDLE_MS = Number(args['idle-ms']);
const LOG_DRIVERS = args['log-drivers'].split(',').map((d) => d.trim()).filter(Boolean);
const SECTIONS = new Set(args.sections.split(',').map((n) => Number(n.trim())));
const NODE_OPTIONS = args['node-options'];
const CHECKIN_S = 5;
const SOCKET = '/var/run/docker.sock';
const IMAGE = process.env.CAPSTAN_TEST_IMAGE || 'capstan-test/busybox:latest';
const PASSWORD = 'bench-password-123';
const EDGE_ID = `edge-bench-${process.pid}`;
const ROOT = [path.resolve(__dirname, '../..'), path.resolve(__dirname, '../../..')].find((d) => fs.existsSync(path.join(d, 'package.json')))!;

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const ms = (v: number) => `${v.toFixed(2)} ms`;
const sec = (v: number) => `${(v / 1000).toFixed(2)} s`;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const say = (line: string) => process.stdout.write(`  ${line}\n`);

/** One way to reach the Docker Engine API: through Capstan or straight to the socket. */
interface DockerRoute {
  label: string;
  base: string;
  prefix: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  connect(): Duplex;
}

async function docker(route: DockerRoute, method: 'GET' | 'POST' | 'DELETE', p: string, body?: unknown) {
  const res = await request(route.base + route.prefix + p, {
    method, dispatcher: route.dispatcher,
    headers: { ...route.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${route.label}: ${method} ${p}: HTTP ${res.statusCode} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/**
 * The agent's state from its own log (LOG_LEVEL=debug logs every check-in): the environment is
 * idle once the tunnel was closed (or never opened) and a check-in after that answered IDLE.
 */
class AgentWatch {
  private events: { msg: string; status?: string }[] = [];
  private partial = '';

  constructor(agent: CapstanProcess) {
    agent.child.stdout!.on('data', (b: Buffer) => {
      const lines = (this.partial + b.toString()).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) {
        try {
          const { msg, status } = JSON.parse(line);
          if (msg === 'checked in' || /tunnel/.test(msg)) this.events.push({ msg, status });
        } catch { /* not a log line */ }
      }
    });
  }

  /** How many tunnels the agent opened so far. */
  get opens(): number {
    return this.events.filter((e) => e.msg === 'tunnel open').length;
  }

  get idle(): boolean {
    const last = (pred: (e: { msg: string; status?: string }) => boolean) => this.events.findLastIndex(pred);
    const opened = last((e) => e.msg === 'tunnel open');
    const closed = last((e) => e.msg === 'tunnel closed' || e.msg === 'closing tunnel');
    return closed >= opened && last((e) => e.msg === 'checked in' && e.status === 'IDLE') > Math.max(opened, closed);
  }
}

/** Sends an HTTP upgrade request on `sock` and resolves with the hijacked stream once the engine answered 101. */
function hijack(sock: Duplex, host: string, p: string, headers: Record<string, string>, body: string): Promise<{ sock: Duplex; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const head = buf.subarray(0, end).toString();
      if (!/^HTTP\/1\.1 101/.test(head)) return reject(new Error(`hijack ${p}: ${head.split('\r\n')[0]} ${buf.subarray(end + 4).toString().slice(0, 200)}`));
      resolve({ sock, rest: buf.subarray(end + 4) });
    };
    sock.on('data', onData);
    sock.once('error', reject);
    const lines = [`POST ${p} HTTP/1.1`, `Host: ${host}`, 'Connection: Upgrade', 'Upgrade: tcp', 'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    sock.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
  });
}

/** Section 1: the first call on an idle environment, at a random phase of the agent's check-in. */
async function firstCallRounds(base: string, envId: number, apiKey: string, watch: AgentWatch): Promise<{ times: number[]; failures: string[] }> {
  const times: number[] = [];
  const failures: string[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    // The server reaps idle tunnels (at most every 10 s, after a snapshot); the agent must then have seen IDLE.
    await waitFor(async () => watch.idle, IDLE_MS + 90_000, 'the tunnel to be closed and the environment idle');
    // A user's first call lands anywhere in the agent's check-in cycle, not right after a check-in.
    await sleep(Math.random() * CHECKIN_S * 1000);
    const opens = watch.opens;
    const t0 = now();
    const res = await api(base, 'GET', `/api/endpoints/${envId}/docker/version`, { apiKey });
    const t = now() - t0;
    if (res.status !== 200) {
      failures.push(`round ${r}: HTTP ${res.status} after ${sec(t)}: ${res.text.slice(0, 200)}`);
      say(failures[failures.length - 1]);
      continue;
    }
    const cold = await waitFor(async () => watch.opens > opens, 2000, 'the agent to log the tunnel it opened').then(() => true, () => false);
    if (cold) times.push(t);
    say(`round ${r}/${ROUNDS}: ${sec(t)}${cold ? '' : ' (the tunnel was already open: not counted)'}`);
  }
  return { times: times.sort((a, b) => a - b), failures };
}

/** Section 2: sequential `GET /containers/json?all=1` on one keep-alive connection. */
async function listLatency(route: DockerRoute): Promise<number[]> {
  for (let i = 0; i < 20; i++) await docker(route, 'GET', '/containers/json?all=1');
  const lat: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = now();
    await docker(route, 'GET', '/containers/json?all=1');
    lat.push(now() - t0);
  }
  return lat.sort((a, b) => a - b);
}

/** One log read: MB/s (1 MB = 10^6 bytes) and the CPU each process used meanwhile. */

/** Section 3: the whole log body of a finished container. */
async function logThroughput(route: DockerRoute, id: string, pids: CpuSet): Promise<LogRun> {
  const { value: bytes, secs, cores } = await withCpu(pids, async () => {
    const res = await request(`${route.base}${route.prefix}/containers/${id}/logs?stdout=1`, { dispatcher: route.dispatcher, headers: route.headers });
    if (res.statusCode !== 200) throw new Error(`${route.label}: logs: HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 300)}`);
    let n = 0;
    for await (const chunk of res.body) n += (chunk as Buffer).length;
    return n;
  });
  return { mbps: bytes / 1e6 / secs, bytes, secs, cores };
}


/**
 * The log container for one driver: `sh` writes LOG_BYTES of `x` without newlines, so the engine
 * stores one entry per 16 KB and its per-line cost is not what is measured. `local` is given room
 * for the whole log in one uncompressed file (its defaults keep 5 × 20 MB, gzipping rotated files).
 */
async function logContainer(direct: DockerRoute, driver: string, containers: string[]): Promise<string> {
  const Config: Record<string, string> = driver === 'local' ? { 'max-size': String(2 * LOG_BYTES + 100e6), 'max-file': '1', compress: 'false' } : {};
  const logger = await docker(direct, 'POST', '/containers/create', {
    Image: IMAGE, Cmd: ['sh', '-c', `head -c ${LOG_BYTES} /dev/zero | tr '\\0' x`], NetworkDisabled: true, Labels: { 'capstan-bench': EDGE_ID },
    HostConfig: { LogConfig: { Type: driver, Config } },
  });
  containers.push(logger.Id);
  const tGen = now();
  await docker(direct, 'POST', `/containers/${logger.Id}/start`);
  await docker(direct, 'POST', `/containers/${logger.Id}/wait`);
  say(`${driver}: log written in ${sec(now() - tGen)}`);
  return logger.Id;
}

/** Section 4: `cat` under a TTY in an exec; one keystroke, time until the terminal echoes it. */
async function echoLatency(route: DockerRoute, container: string): Promise<number[]> {
  const exec = await docker(route, 'POST', `/containers/${container}/exec`, { AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Cmd: ['cat'] });
  const { sock } = await hijack(route.connect(), 'docker', `${route.prefix}/exec/${exec.Id}/start`, route.headers, '{"Detach":false,"Tty":true}');
  let received = 0;
  let wake: (() => void) | undefined;
  sock.on('data', (b: Buffer) => {
    received += b.length;
    wake?.();
  });
  const until = (n: number) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${route.label}: no exec echo within 10 s`)), 10_000);
    wake = () => {
      if (received < n) return;
      clearTimeout(timer);
      wake = undefined;
      resolve();
    };
    wake();
  });
  const lat: number[] = [];
  try {
    for (let i = 0; i < ECHOES + 10; i++) {
      const before = received;
      const t0 = now();
      sock.write('a\n');
      await until(before + 1);
      if (i >= 10) lat.push(now() - t0);
      // The TTY echoes "a\r\n", then cat writes its own "a\r\n": wait for both before the next keystroke.
      await until(before + 6);
    }
  } finally {
    sock.end('\x04');
    sock.destroy();
  }
  return lat.sort((a, b) => a - b);
}

/** The server and agent processes, the admin's API key and the Edge environment the agent serves. */
interface Stack {
  base: string;
  port: number;
  envId: number;
  apiKey: string;
  watch: AgentWatch;
}

async function startStack(temp: string[], procs: CapstanProcess[]): Promise<Stack> {
  const profile: Record<string, string> = NODE_OPTIONS ? { NODE_OPTIONS } : {};
  const server = await startBenchServer({ CAPSTAN_TUNNEL_IDLE_MS: String(IDLE_MS), ...profile });
  procs.push(server.process);
  temp.push(server.dataDir);
  const { base } = server;
  const port = Number(new URL(base).port);
  const token = await adminToken(base, 'admin', PASSWORD);
  const key = await api(base, 'POST', '/api/users/1/tokens', { token, body: { description: 'edge-bench', password: PASSWORD } });
  const env = await api(base, 'POST', '/api/endpoints', { token, body: { Name: 'edge-bench', EndpointCreationType: 4, URL: base, EdgeCheckinInterval: CHECKIN_S } });
  if (env.status !== 200 || key.status !== 200) throw new Error(`set-up failed: ${env.status} ${env.text.slice(0, 300)} / ${key.status} ${key.text.slice(0, 300)}`);
  const envId = env.body.Id as number;
  // EDGE_INACTIVITY_TIMEOUT is long so that only the server's idle reaper closes tunnels. The agent
  // polls (EDGE_PUSH=0) as Portainer's does: the figure asked for is at a 5 s check-in interval
  // (with the push channel it is tens of milliseconds; test/integration/edge-push prints it).
  const agent = startProcess('bench-agent', {
    EDGE: '1', EDGE_KEY: env.body.EdgeKey, EDGE_ID, EDGE_INSECURE_POLL: '1', DOCKER_HOST: `unix://${SOCKET}`,
    DATA_PATH: temp[0], EDGE_INACTIVITY_TIMEOUT: '1h', LOG_LEVEL: 'debug', EDGE_PUSH: '0', ...profile,
  }, AGENT_MAIN);
  procs.push(agent);
  const watch = new AgentWatch(agent);
  await waitFor(async () => (await api(base, 'GET', `/api/endpoints/${envId}`, { token })).body.EdgeID === EDGE_ID, 30_000, 'the agent to check in');
  // The first check-in triggers a snapshot through a tunnel: let it open, so round 1 starts idle too.
  await waitFor(async () => watch.opens > 0, 2 * CHECKIN_S * 1000 + 10_000, 'the first snapshot').catch(() => undefined);
  return { base, port, envId, apiKey: key.body.rawAPIKey, watch };
}

/** Section 3's runs of one log driver, by route. */
type LogRuns = Record<'capstan' | 'direct', LogRun[]>;

interface Results {
  first?: { times: number[]; failures: string[] };
  list?: Record<'capstan' | 'direct', number[]>;
  logs?: Map<string, LogRuns>;
  echo?: Record<'capstan' | 'direct', number[]>;
}

function printResults({ first, list, logs, echo }: Results) {
  const row = (a: string, b: string, c: string, d = '') => console.log(`  ${a.padEnd(50)}${b.padStart(12)}${c.padStart(12)}  ${d}`.trimEnd());
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log('\nResults');
  if (first) {
    const { times, failures } = first;
    const worst = times.length ? times[times.length - 1] : NaN;
    row('1. first call on an idle environment', 'p50', 'max');
    row(`   through Capstan (${times.length} of ${ROUNDS} rounds, min ${times.length ? sec(times[0]) : '-'})`,
      times.length ? sec(pct(times, 50)) : '-', times.length ? sec(worst) : '-',
      `target ≤ interval + 1 s = ${CHECKIN_S + 1} s: ${verdict(!failures.length && worst <= (CHECKIN_S + 1) * 1000)}`);
    for (const f of failures) console.log(`     FAILED ${f}`);
  }
  if (list) {
    row(`2. GET /containers/json?all=1 (${REQUESTS} req)`, 'p50', 'p99');
    row('   through Capstan', ms(pct(list.capstan, 50)), ms(pct(list.capstan, 99)));
    row('   Docker socket', ms(pct(list.direct, 50)), ms(pct(list.direct, 99)));
    row('   overhead', `+${ms(pct(list.capstan, 50) - pct(list.direct, 50))}`, `+${ms(pct(list.capstan, 99) - pct(list.direct, 99))}`);
  }
  if (logs) {
    const mbps = (runs: LogRun[]) => runs.map((r) => r.mbps);
    const best = (runs: LogRun[]) => Math.max(...mbps(runs));
    row(`3. logs, ${LOG_BYTES / 1e6} MB body (${LOG_RUNS} runs each)`, 'best', 'worst', 'CPU ms per MB (all runs): dockerd server agent bench');
    for (const [driver, runs] of logs) {
      const cpu = (r: LogRun[]) => ['dockerd', 'server', 'agent', 'bench'].map((w) => msPerMb(r, w as keyof LogRun['cores']).toFixed(2).padStart(7)).join('');
      const through = best(runs.capstan);
      row(`   ${driver} driver, through Capstan`, `${through.toFixed(0)} MB/s`, `${Math.min(...mbps(runs.capstan)).toFixed(0)} MB/s`, `${' '.repeat(17)}${cpu(runs.capstan)}`);
      row(`   ${driver} driver, Docker socket`, `${best(runs.direct).toFixed(0)} MB/s`, `${Math.min(...mbps(runs.direct)).toFixed(0)} MB/s`, `${' '.repeat(17)}${cpu(runs.direct)}`);
      row('', '', '', `best through Capstan = ${(100 * through / best(runs.direct)).toFixed(0)}% of the socket's best; target ≥ 100 MB/s (${driver}): ${verdict(through >= 100)}`);
    }
  }
  if (echo) {
    row(`4. exec keystroke → echo (${ECHOES} round trips)`, 'p50', 'p99');
    row('   through Capstan', ms(pct(echo.capstan, 50)), ms(pct(echo.capstan, 99)));
    row('   Docker socket', ms(pct(echo.direct, 50)), ms(pct(echo.direct, 99)));
  }
}

async function main() {
  const run = promisify(execFile);
  await run('bash', [path.join(ROOT, 'infra/ensure-docker.sh')]).catch((err) => {
    throw new Error(`no Docker engine on ${SOCKET}; run \`bash infra/ensure-docker.sh\` (as root) first: ${err.stderr || err.message}`);
  });
  await run('bash', [path.join(ROOT, 'infra/ensure-test-image.sh')]);
  if (IDLE_MS < (CHECKIN_S + 2) * 1000) console.warn(`--idle-ms ${IDLE_MS} is below the check-in interval + 2 s: tunnels may be reaped before the agent connects`);

  const temp = [tempDataDir('capstan-bench-agent-')];
  const procs: CapstanProcess[] = [];
  const containers: string[] = [];
  const direct: DockerRoute = {
    label: 'Docker socket', base: 'http://docker', prefix: '', headers: {},
    dispatcher: new Agent({ connect: { socketPath: SOCKET }, keepAliveTimeout: 60_000, connections: 1 }),
    connect: () => net.connect({ path: SOCKET }),
  };
  const capstanClient = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 60_000, connections: 1 });
  let cleaned: Promise<void> | undefined;
  const cleanup = () => (cleaned ??= (async () => {
    for (const id of containers) await docker(direct, 'DELETE', `/containers/${id}?force=1`).catch(() => undefined);
    for (const p of procs.reverse()) await p.kill();
    for (const dir of temp) fs.rmSync(dir, { recursive: true, force: true });
    await Promise.all([direct.dispatcher.close(), capstanClient.close()]);
  })());
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    const { base, port, envId, apiKey, watch } = await startStack(temp, procs);
    const capstan: DockerRoute = {
      label: 'through Capstan', base, prefix: `/api/endpoints/${envId}/docker`, headers: { 'X-API-Key': apiKey },
      dispatcher: capstanClient,
      connect: () => tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }),
    };
    const version = await docker(direct, 'GET', '/version');
    console.log(`\nCapstan edge benchmark: ${os.cpus().length} CPUs, Docker ${version.Version}, check-in interval ${CHECKIN_S} s, tunnel idle ${IDLE_MS} ms`);

    const results: Results = {};
    if (SECTIONS.has(1)) {
      console.log(`1. First Docker call on an idle environment (GET /version), ${ROUNDS} rounds`);
      results.first = await firstCallRounds(base, envId, apiKey, watch);
    }

    if (SECTIONS.has(2)) {
      const listed = (await docker(direct, 'GET', '/containers/json?all=1')).length;
      console.log(`2. GET /containers/json?all=1 (${listed} containers), ${REQUESTS} sequential requests each`);
      const list = { capstan: await listLatency(capstan), direct: await listLatency(direct) };
      say(`p50 through Capstan ${ms(pct(list.capstan, 50))}, Docker socket ${ms(pct(list.direct, 50))}`);
      results.list = list;
    }

    if (SECTIONS.has(3)) {
      console.log(`3. Log streaming: GET /containers/{id}/logs?stdout=1 of a ${LOG_BYTES / 1e6} MB log, ${LOG_RUNS} runs each, log drivers ${LOG_DRIVERS.join(', ')}`);
      const pids: CpuSet = { dockerd: dockerdPid(), server: procs[0].child.pid, agent: procs[1].child.pid, bench: process.pid };
      results.logs = new Map();
      for (const driver of LOG_DRIVERS) {
        const id = await logContainer(direct, driver, containers);
        const runs: LogRuns = { capstan: [], direct: [] };
        for (let i = 0; i < LOG_RUNS; i++) {
          for (const [name, route] of [['direct', direct], ['capstan', capstan]] as const) {
            // The idle reaper may have closed the tunnel meanwhile: a run must not time its reopening.
            if (name === 'capstan') await docker(capstan, 'GET', '/version');
            const r = await logThroughput(route, id, pids);
            runs[name].push(r);
            say(`${driver}, ${route.label}: ${(r.bytes / 1e6).toFixed(0)} MB at ${r.mbps.toFixed(0)} MB/s (${sec(r.secs * 1000)}); ${cpuLine(r)}`);
          }
        }
        results.logs.set(driver, runs);
        // What the processes held at their busiest: fewer collections may mean more memory between them.
        say(`peak RSS so far: server ${peakRssMb(pids.server)} MB, agent ${peakRssMb(pids.agent)} MB`);
        await docker(direct, 'DELETE', `/containers/${id}?force=1`);
        containers.splice(containers.indexOf(id), 1);
      }
    }

    if (SECTIONS.has(4)) {
      console.log(`4. Interactive exec: cat under a TTY, keystroke → echo, ${ECHOES} round trips each`);
      const sleeper = await docker(direct, 'POST', '/containers/create', { Image: IMAGE, Cmd: ['sleep', '3600'], NetworkDisabled: true, Labels: { 'capstan-bench': EDGE_ID } });
      containers.push(sleeper.Id);
      await docker(direct, 'POST', `/containers/${sleeper.Id}/start`);
      const echo = { capstan: await echoLatency(capstan, sleeper.Id), direct: await echoLatency(direct, sleeper.Id) };
      say(`p50 through Capstan ${ms(pct(echo.capstan, 50))}, Docker socket ${ms(pct(echo.direct, 50))}`);
      results.echo = echo;
    }

    printResults(results);
  } catch (err) {
    for (const p of procs) console.error(`--- last lines of ${p.name}:\n${p.output.slice(-25).join('\n')}`);
    throw err;
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
