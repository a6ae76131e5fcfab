/**
 * The server side of a load test: starting the embedded default as a child process, finding the
 * processes of a running server, and collecting the server's warn/error log lines so slow
 * check-ins can be matched with them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { freePort, waitFor } from '../helpers/processes';
import { tempDataDir } from '../helpers/ids';

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
const KEEP = 20_000;

/** Warn and error lines of pino JSON output, fed in chunks or lines. */
export class ServerLog {
  readonly lines: ServerLogLine[] = [];
  total = 0;
  warnOrWorse = 0;
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
        this.keep({ time, level, msg: String(o.msg ?? '') + (o.err?.message ? `: ${o.err.message}` : '') });
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

/** Reads a server log (pino JSON lines), streaming: at level info it holds a couple of lines per check-in. */
export async function readServerLog(file: string): Promise<ServerLog> {
  const log = new ServerLog();
  for await (const chunk of fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) log.feed(chunk as string);
  log.feed('\n');
  return log;
}

/** The embedded default server the load test started. */
export interface EmbeddedServer {
  base: string;
  port: number;
  pid: number;
  dataDir: string;
  /** Its stdout and stderr. */
  logFile: string;
  child: ChildProcess;
  /** Stops it and removes its data dir (log included). */
  stop(): Promise<void>;
}

/**
 * Starts `node dist/services/main.js` on free ports with a temporary data dir and waits for it to
 * answer. Its output goes straight to a file in the data dir, not through a pipe the tester reads:
 * at level info that is a couple of lines per check-in, and a reader lagging behind must not slow
 * the server down.
 */
export async function startEmbeddedServer(o: { logLevel: string; nodeArgs: string[] }): Promise<EmbeddedServer> {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const dataDir = tempDataDir('capstan-loadtest-');
  const port = await freePort();
  const logFile = path.join(dataDir, 'server.log');
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [...o.nodeArgs, MAIN], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp',
      CAPSTAN_DATA_DIR: dataDir, CAPSTAN_HOST: '127.0.0.1', CAPSTAN_HTTPS_PORT: String(port),
      CAPSTAN_TUNNEL_PORT: String(await freePort()), CAPSTAN_LOG_LEVEL: o.logLevel,
    },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const base = `https://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const probe = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`);
      const r = await request(`${base}/api/system/status`, { dispatcher: probe });
      await r.body.dump();
      return r.statusCode === 200;
    }, 60_000, 'the embedded server to answer');
  } catch (err) {
    const tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    await stop();
    throw new Error(`the embedded server did not start; its last output:\n${tail}`, { cause: err });
  } finally {
    await probe.close();
  }
  return { base, port, pid: child.pid!, dataDir, logFile, child, stop };
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
