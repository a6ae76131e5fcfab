/**
 * CPU accounting for the edge benchmark: CPU seconds per process and for the whole machine from
 * /proc, so a run can report what each MB cost each process (dockerd, server, agent, the client).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

const now = () => Number(process.hrtime.bigint()) / 1e6;

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, from /proc; NaN once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine, all cores (/proc/stat less idle and iowait). */
export function machineSeconds(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3] - (f[4] ?? 0)) / CLK_TCK;
}

/** The Docker daemon's pid (it decodes the log files), if it runs on this machine. */
export function dockerdPid(): number | undefined {
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dockerd') return Number(pid);
    } catch { /* gone */ }
  }
  return undefined;
}

/** The most resident memory a process has held so far (VmHWM), in MB (10^6 bytes); NaN once it is gone. */
export function peakRssMb(pid: number | undefined): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Math.round((Number(kb[1]) * 1024) / 1e6) : NaN;
  } catch {
    return NaN;
  }
}

/** The processes whose CPU time section 3 reports, by name. */
export type CpuSet = Record<'dockerd' | 'server' | 'agent' | 'bench', number | undefined>;

/** CPU used per process and by the whole machine while `fn` ran, in cores (CPU seconds per second). */
export async function withCpu<T>(pids: CpuSet, fn: () => Promise<T>): Promise<{ value: T; secs: number; cores: Record<keyof CpuSet | 'machine', number> }> {
  const names = Object.keys(pids) as (keyof CpuSet)[];
  const before = names.map((n) => cpuSeconds(pids[n]));
  const machine = machineSeconds();
  const t0 = now();
  const value = await fn();
  const secs = (now() - t0) / 1000;
  const cores = Object.fromEntries(names.map((n, i) => [n, (cpuSeconds(pids[n]) - before[i]) / secs])) as Record<keyof CpuSet | 'machine', number>;
  cores.machine = (machineSeconds() - machine) / secs;
  return { value, secs, cores };
}

/** One log read: MB/s (1 MB = 10^6 bytes) and the CPU each process used meanwhile. */
export interface LogRun { mbps: number; bytes: number; secs: number; cores: Record<keyof CpuSet | 'machine', number> }

/**
 * CPU milliseconds a process spent per MB of log over `runs`: on a contended machine MB/s
 * follows whoever else is busy; the CPU each MB costs follows it far less.
 */
export const msPerMb = (runs: LogRun[], who: keyof LogRun['cores']) =>
  (1000 * runs.reduce((a, r) => a + r.cores[who] * r.secs, 0)) / (runs.reduce((a, r) => a + r.bytes, 0) / 1e6);

/** "CPU cores: dockerd 0.81, server 0.52, …; CPU ms per MB: …": cores per process and for the machine, then CPU per MB. */
export function cpuLine(r: LogRun): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
  const c = r.cores;
  return `CPU cores: dockerd ${f(c.dockerd)}, server ${f(c.server)}, agent ${f(c.agent)}, bench ${f(c.bench)}; machine ${f(c.machine)} busy of ${os.cpus().length}; `
    + `CPU ms per MB: dockerd ${f(msPerMb([r], 'dockerd'))}, server ${f(msPerMb([r], 'server'))}, agent ${f(msPerMb([r], 'agent'))}`;
}
