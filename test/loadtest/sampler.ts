/**
 * Resource sampling from /proc: CPU (cores) and RSS of the server processes, of the tester itself
 * and of the whole machine (a load test on a shared machine must show who else used the CPUs),
 * and established TCP connections on the server port.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** utime + stime (ticks) and VmRSS (bytes) of one process, or undefined when it is gone. */
function readProcess(pid: number): { ticks: number; rss: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { ticks: Number(f[11]) + Number(f[12]), rss: rssKb * 1024 };
  } catch {
    return undefined;
  }
}

/** RSS of a process now, MB (NaN when it is gone). */
export function processRssMB(pid: number): number {
  const r = readProcess(pid);
  return r ? r.rss / 1048576 : NaN;
}

/** Busy, softirq and total jiffies of the whole machine (/proc/stat), all CPUs. */
function readMachine(): { busy: number; softirq: number; total: number } {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    // idle and iowait are not busy.
    return { busy: total - f[3] - (f[4] ?? 0), softirq: f[6] ?? 0, total };
  } catch {
    return { busy: NaN, softirq: NaN, total: NaN };
  }
}

/** One process using CPU besides the server and the tester, over the last sampling interval. */
export interface OtherProcess {
  pid: number;
  /** Command name, or the script when it is node: `node jest`, `node dist/services/main.js`. */
  name: string;
  cores: number;
}

function describe(pid: string, comm: string): string {
  if (!/^(node|MainThread|npm)/.test(comm)) return comm;
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const script = args.slice(1).find((a) => !a.startsWith('-'));
    return script ? `node ${script.replace(/^.*node_modules\/\.bin\//, '').split('/').slice(-3).join('/')}` : comm;
  } catch {
    return comm;
  }
}

/**
 * Every process's CPU between two calls (all of /proc, a few ms with a few hundred processes):
 * names who else used the machine during a run.
 */
export class OthersSampler {
  private last = new Map<string, number>();
  private at = performance.now();
  private readonly tck = clockTicks();

  /** The processes, but `exclude`, that used at least `min` cores since the previous call, busiest first. */
  sample(exclude: ReadonlySet<number>, min = 0.05): OtherProcess[] {
    const now = performance.now();
    const wallS = (now - this.at) / 1000;
    const next = new Map<string, number>();
    const out: OtherProcess[] = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(d)) continue;
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      } catch {
        continue;
      }
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]);
      next.set(d, ticks);
      const before = this.last.get(d);
      if (before === undefined || exclude.has(Number(d))) continue;
      const cores = (ticks - before) / this.tck / wallS;
      if (cores >= min) out.push({ pid: Number(d), name: describe(d, stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))), cores: Math.round(cores * 100) / 100 });
    }
    this.last = next;
    this.at = now;
    return out.sort((a, b) => b.cores - a.cores);
  }
}

/** Share of the last 10 s in which some runnable task waited for a CPU (PSI), percent; NaN without PSI. */
function cpuPressure(): number {
  try {
    return Number(/some avg10=([0-9.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * Connections the kernel dropped because a listening socket's accept queue was full
 * (TcpExt ListenOverflows, whole machine): during a handshake storm the server's backlog overflows
 * and those clients wait for a SYN retransmit (1 s, then 3 s, 7 s, ...).
 */
export function listenOverflows(): number {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const i = lines.findIndex((l) => l.startsWith('TcpExt:'));
    const names = lines[i].split(/\s+/);
    const values = lines[i + 1].split(/\s+/);
    return Number(values[names.indexOf('ListenOverflows')]);
  } catch {
    return NaN;
  }
}

/** A process sampled on its own: a server process, or infrastructure (NATS, Redis) reported beside the server. */
export interface SampledProcess {
  name: string;
  pid: number;
  /** Not part of the server's sum (NATS, Redis: shared with whatever else runs on the machine). */
  infra?: boolean;
}

/** One process's reading: cores since the previous reading, RSS now (NaN once it is gone). */
export interface ProcessSample {
  cpu: number;
  rss: number;
}

/** One second's resource reading. */
export interface ResourceSample {
  /** Cores used since the previous reading (summed over the server processes); NaN when not sampled. */
  serverCpu: number;
  serverRss: number;
  testerCpu: number;
  testerRss: number;
  /** Cores busy on the whole machine (everyone: server, tester, other processes). */
  machineCpu: number;
  /** Of which in softirq (network processing not charged to a process). */
  softirqCpu: number;
  /** CPU pressure (PSI some avg10), percent. */
  cpuPressure: number;
  /** Listen queue overflows since the previous reading (whole machine). */
  listenOverflows: number;
  /** Each sampled process (server processes and infrastructure), in the order given. */
  processes: ProcessSample[];
}

/**
 * Local NATS and Redis server processes (by command name), reported beside a distributed server.
 * On a shared machine other tests use them too.
 */
export function infraProcesses(): SampledProcess[] {
  const out: SampledProcess[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    let comm = '';
    try {
      comm = fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (comm === 'nats-server' || comm === 'redis-server') out.push({ name: comm, pid: Number(d), infra: true });
  }
  return out;
}

export class ProcSampler {
  private readonly tck = clockTicks();
  // /proc/stat's first line sums every CPU of the machine.
  private readonly cpus = os.cpus().length;
  private last: {
    at: number; procs: Array<{ ticks: number; rss: number } | undefined>; tester: NodeJS.CpuUsage; children: Map<number, number>;
    machine: { busy: number; softirq: number; total: number }; overflows: number;
  };
  private readonly server: boolean;
  /** The tester's child processes (agents on processes): their CPU and RSS are the tester's too. */
  private readonly children = new Set<number>();

  /** `procs`: the server's processes (summed) and infrastructure ones (reported apart). */
  constructor(private readonly procs: readonly SampledProcess[]) {
    this.server = procs.some((p) => !p.infra);
    this.last = { at: performance.now(), procs: procs.map((p) => readProcess(p.pid)), tester: process.cpuUsage(), children: new Map(), machine: readMachine(), overflows: listenOverflows() };
  }

  /** Counts a child process of the tester in the tester's figures from now on. */
  addTesterProcess(pid: number): void {
    this.children.add(pid);
  }

  /** CPU since the previous call, RSS now. The tester's CPU covers every thread of this process. */
  sample(): ResourceSample {
    const at = performance.now();
    const now = this.procs.map((p) => readProcess(p.pid));
    const tester = process.cpuUsage();
    const machine = readMachine();
    const overflows = listenOverflows();
    const wallS = (at - this.last.at) / 1000;
    // Children: CPU since the previous reading (from their start, for a new one), RSS now.
    const children = new Map<number, number>();
    let childCpu = 0;
    let childRss = 0;
    for (const pid of this.children) {
      const r = readProcess(pid);
      if (!r) continue;
      children.set(pid, r.ticks);
      childCpu += (r.ticks - (this.last.children.get(pid) ?? 0)) / this.tck / wallS;
      childRss += r.rss;
    }
    const processes = now.map((r, i): ProcessSample => {
      const before = this.last.procs[i];
      return { cpu: r && before ? (r.ticks - before.ticks) / this.tck / wallS : NaN, rss: r ? r.rss : NaN };
    });
    let serverCpu = 0;
    let serverRss = 0;
    processes.forEach((p, i) => {
      if (this.procs[i].infra) return;
      if (Number.isFinite(p.cpu)) serverCpu += p.cpu;
      if (Number.isFinite(p.rss)) serverRss += p.rss;
    });
    const out: ResourceSample = {
      serverCpu: this.server ? serverCpu : NaN,
      serverRss: this.server ? serverRss : NaN,
      testerCpu: (tester.user + tester.system - this.last.tester.user - this.last.tester.system) / 1e6 / wallS + childCpu,
      testerRss: process.memoryUsage.rss() + childRss,
      machineCpu: ((machine.busy - this.last.machine.busy) / (machine.total - this.last.machine.total)) * this.cpus,
      softirqCpu: ((machine.softirq - this.last.machine.softirq) / (machine.total - this.last.machine.total)) * this.cpus,
      cpuPressure: cpuPressure(),
      listenOverflows: overflows - this.last.overflows,
      processes,
    };
    this.last = { at, procs: now, tester, children, machine, overflows };
    return out;
  }
}

/**
 * ESTABLISHED TCP connections involving `ports`, from /proc/net/tcp and tcp6: `server` where the
 * local port is one of them (the server's end, when it runs on this machine), `client` where the
 * remote port is (the agents' end).
 */
export function countEstablished(ports: readonly number[]): { server: number; client: number } {
  const locals = ports.map((port) => `:${port.toString(16).toUpperCase().padStart(4, '0')} `);
  let server = 0;
  let client = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    let pos = text.indexOf('\n') + 1;
    while (pos < text.length) {
      const end = text.indexOf('\n', pos);
      const line = text.slice(pos, end < 0 ? text.length : end);
      pos = end < 0 ? text.length : end + 1;
      // "  sl  local_address rem_address   st ..."; addresses are HEX_IP:HEX_PORT.
      const f = line.trim().split(/\s+/, 4);
      if (f[3] !== '01') continue;
      if (locals.some((l) => `${f[1]} `.endsWith(l))) server++;
      if (locals.some((l) => `${f[2]} `.endsWith(l))) client++;
    }
  }
  return { server, client };
}
