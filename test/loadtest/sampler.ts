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

/** Busy and total jiffies of the whole machine (/proc/stat), all CPUs. */
function readMachine(): { busy: number; total: number } {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    // idle and iowait are not busy.
    return { busy: total - f[3] - (f[4] ?? 0), total };
  } catch {
    return { busy: NaN, total: NaN };
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

/** One second's resource reading. */
export interface ResourceSample {
  /** Cores used since the previous reading (summed over the server processes); NaN when not sampled. */
  serverCpu: number;
  serverRss: number;
  testerCpu: number;
  testerRss: number;
  /** Cores busy on the whole machine (everyone: server, tester, other processes). */
  machineCpu: number;
  /** CPU pressure (PSI some avg10), percent. */
  cpuPressure: number;
  /** Listen queue overflows since the previous reading (whole machine). */
  listenOverflows: number;
}

export class ProcSampler {
  private readonly tck = clockTicks();
  // /proc/stat's first line sums every CPU of the machine.
  private readonly cpus = os.cpus().length;
  private last: { at: number; server: number; tester: NodeJS.CpuUsage; machine: { busy: number; total: number }; overflows: number };

  constructor(private readonly pids: readonly number[]) {
    this.last = { at: performance.now(), server: this.serverTicks().ticks, tester: process.cpuUsage(), machine: readMachine(), overflows: listenOverflows() };
  }

  private serverTicks(): { ticks: number; rss: number } {
    let ticks = 0;
    let rss = 0;
    for (const pid of this.pids) {
      const p = readProcess(pid);
      if (p) {
        ticks += p.ticks;
        rss += p.rss;
      }
    }
    return { ticks, rss };
  }

  /** CPU since the previous call, RSS now. The tester's CPU covers every thread of this process. */
  sample(): ResourceSample {
    const at = performance.now();
    const s = this.serverTicks();
    const tester = process.cpuUsage();
    const machine = readMachine();
    const overflows = listenOverflows();
    const wallS = (at - this.last.at) / 1000;
    const out: ResourceSample = {
      serverCpu: this.pids.length ? (s.ticks - this.last.server) / this.tck / wallS : NaN,
      serverRss: this.pids.length ? s.rss : NaN,
      testerCpu: (tester.user + tester.system - this.last.tester.user - this.last.tester.system) / 1e6 / wallS,
      testerRss: process.memoryUsage.rss(),
      machineCpu: ((machine.busy - this.last.machine.busy) / (machine.total - this.last.machine.total)) * this.cpus,
      cpuPressure: cpuPressure(),
      listenOverflows: overflows - this.last.overflows,
    };
    this.last = { at, server: s.ticks, tester, machine, overflows };
    return out;
  }
}

/**
 * ESTABLISHED TCP connections involving `port`, from /proc/net/tcp and tcp6: `server` where the
 * local port is `port` (the server's end, when it runs on this machine), `client` where the remote
 * port is (the agents' end).
 */
export function countEstablished(port: number): { server: number; client: number } {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const local = `:${hex} `;
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
      if (`${f[1]} `.endsWith(local)) server++;
      if (`${f[2]} `.endsWith(local)) client++;
    }
  }
  return { server, client };
}
