/**
 * The main thread's view of a running load test: takes the workers' reports, samples resources
 * every second into the timeline, and prints the progress line.
 */
import type { FleetCounters } from './fleet';
import type { PushCounters } from './push';
import type { RunData, TimelinePoint } from './report';
import { countEstablished, OthersSampler, ProcSampler, type SampledProcess } from './sampler';
import { isAnswered, percentile, type SampleBatch } from './stats';
import type { TunnelCounters, TunnelOpenEvent } from './tunnels';
import type { LoopHealth, WorkerMessage } from './worker';

export interface MonitorOptions {
  runStartEpochMs: number;
  durationS: number;
  /** Check-ins per second the fleet should make. */
  expectedPerS: number;
  agents?: number;
  /** Server processes (summed) and infrastructure processes (reported apart). */
  processes: readonly SampledProcess[];
  /** Server ports, for ESTABLISHED sockets; undefined when the server is not on this machine. */
  localServerPorts?: number[];
  /** Push mode: the progress line is about the channels. */
  push?: boolean;
}

/** Sums counter records key by key into `a`. */
function addCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
  return a;
}

const num = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const round2 = (n: number) => (Number.isFinite(n) ? Math.round(n * 100) / 100 : NaN);

export class Monitor {
  readonly batches: SampleBatch[] = [];
  readonly timeline: TimelinePoint[] = [];
  private pending: SampleBatch[] = [];
  private readonly counters = new Map<number, FleetCounters>();
  private readonly tunnelCounters = new Map<number, TunnelCounters>();
  /** Tunnels the storm's agents opened. */
  readonly tunnelEvents: TunnelOpenEvent[] = [];
  private readonly pushCounters = new Map<number, PushCounters>();
  /** Push mode: every worker's events, flat (see PushEvents). */
  readonly pushOpens: number[] = [];
  readonly pushStatus: number[] = [];
  /** Push mode: what the progress line adds (the phase, REQUIRED received). */
  pushNote = '';
  private loops: LoopHealth[] = [];
  private readonly lastReport = new Map<number, number>();
  private readonly sampler: ProcSampler;
  private readonly others = new OthersSampler();
  private readonly known: Set<number>;
  private readonly tty = process.stderr.isTTY;
  private lastServerConnections = NaN;
  private errorsSoFar = 0;

  constructor(private readonly o: MonitorOptions) {
    this.sampler = new ProcSampler(o.processes);
    this.known = new Set([process.pid, ...o.processes.map((p) => p.pid)]);
    this.others.sample(this.known);
  }

  /** A child process of the tester (agents on processes): counted as the tester, not as another process. */
  addTesterProcess(pid: number): void {
    this.sampler.addTesterProcess(pid);
    this.known.add(pid);
  }

  /** The storm's agents' tunnel counters, summed over the workers (undefined without a storm). */
  tunnelTotals(): TunnelCounters | undefined {
    if (!this.tunnelCounters.size) return undefined;
    return [...this.tunnelCounters.values()].reduce((a, c) => ({
      agents: a.agents + c.agents, armed: a.armed || c.armed, opening: a.opening + c.opening, open: a.open + c.open, opened: a.opened + c.opened,
      failed: addCounts(a.failed, c.failed), dropped: a.dropped + c.dropped, closedIdle: a.closedIdle + c.closedIdle, served: addCounts(a.served, c.served),
    }), { agents: 0, armed: false, opening: 0, open: 0, opened: 0, failed: {}, dropped: 0, closedIdle: 0, served: {} } as TunnelCounters);
  }

  /** The push channels' counters, summed over the workers (undefined but in push mode). */
  pushTotals(): PushCounters | undefined {
    if (!this.pushCounters.size) return undefined;
    return [...this.pushCounters.values()].reduce((a, c) => ({
      agents: a.agents + c.agents, offered: a.offered + c.offered, queued: a.queued + c.queued, connecting: a.connecting + c.connecting, open: a.open + c.open, opened: a.opened + c.opened,
      openByPort: addCounts(a.openByPort, c.openByPort), failed: addCounts(a.failed, c.failed), dropped: addCounts(a.dropped, c.dropped),
      messages: addCounts(a.messages, c.messages), statuses: addCounts(a.statuses, c.statuses), pings: a.pings + c.pings, firstErrors: { ...c.firstErrors, ...a.firstErrors },
    }), { agents: 0, offered: 0, queued: 0, connecting: 0, open: 0, opened: 0, openByPort: {}, failed: {}, dropped: {}, messages: {}, statuses: {}, pings: 0, firstErrors: {} } as PushCounters);
  }

  onReport(worker: number, m: Extract<WorkerMessage, { type: 'report' }>): void {
    this.batches.push(m.batch);
    this.pending.push(m.batch);
    this.counters.set(worker, m.counters);
    this.loops.push(m.loop);
    this.lastReport.set(worker, Date.now());
    if (m.tunnels) {
      this.tunnelCounters.set(worker, m.tunnels.counters);
      this.tunnelEvents.push(...m.tunnels.events);
    }
    if (m.push) {
      this.pushCounters.set(worker, m.push.counters);
      // Loops, not spreads: a report can carry tens of thousands of numbers.
      for (const x of m.push.events.opens) this.pushOpens.push(x);
      for (const x of m.push.events.status) this.pushStatus.push(x);
    }
  }

  /** Counters summed over the workers. */
  totals(): RunData['counters'] {
    return [...this.counters.values()].reduce((a, c) => ({
      handshakes: a.handshakes + c.handshakes, resumed: a.resumed + c.resumed, idleCloses: a.idleCloses + c.idleCloses,
      lateTicks: a.lateTicks + c.lateTicks, messages: { ...c.messages, ...a.messages },
    }), { handshakes: 0, resumed: 0, idleCloses: 0, lateTicks: 0, messages: {} as Record<string, string> });
  }

  /** Agents that have had a check-in answered, over every worker. */
  answeredAgents(): number {
    return [...this.counters.values()].reduce((a, c) => a + c.answeredAgents, 0);
  }

  /** One second: a timeline point and the progress line. The final call (the wind-down) is printed only. */
  tick(final = false): void {
    const now = Date.now();
    const t = Math.round((now - this.o.runStartEpochMs) / 1000);
    const res = this.sampler.sample();
    const lat: number[] = [];
    let errors = 0;
    for (const b of this.pending) {
      for (let i = 0; i < b.t.length; i++) {
        lat.push(b.latency[i]);
        if (!isAnswered(b.code[i])) errors++;
      }
    }
    this.pending = [];
    this.errorsSoFar += errors;
    // Every 5 s (reading /proc/net/tcp with 30,000 sockets costs a few ms), away from the run's edges.
    const ports = this.o.localServerPorts;
    const serverConnections = ports?.length && t % 5 === 2 && t < this.o.durationS ? countEstablished(ports).server : NaN;
    if (Number.isFinite(serverConnections)) this.lastServerConnections = serverConnections;
    const push = this.pushTotals();
    const testerConnections = [...this.counters.values()].reduce((a, c) => a + c.open, 0) + (push?.open ?? 0);
    const p99 = percentile(Float64Array.from(lat).sort(), 99);
    // A worker that has not reported for a while had its loop blocked at least that long.
    const silentMs = Math.max(0, ...[...this.lastReport.values()].map((at) => now - at - 1000));
    const point: TimelinePoint = {
      t, checkins: lat.length, errors, p99, serverCpu: res.serverCpu, serverRssMB: res.serverRss / 1048576,
      testerCpu: res.testerCpu, testerRssMB: res.testerRss / 1048576, testerConnections, serverConnections,
      testerLoopBusy: this.loops.length ? Math.max(...this.loops.map((l) => l.busy)) : NaN,
      testerLoopDelayMs: Math.max(silentMs, ...this.loops.map((l) => l.delayP99Ms)),
      machineCpu: res.machineCpu,
      // Infrastructure (NATS, Redis) has its own figures; softirq is the kernel's network work.
      otherCpu: res.machineCpu - (Number.isFinite(res.serverCpu) ? res.serverCpu : 0) - res.testerCpu
        - res.processes.reduce((a, p, i) => a + (this.o.processes[i].infra && Number.isFinite(p.cpu) ? p.cpu : 0), 0),
      softirqCpu: res.softirqCpu,
      cpuPressure: res.cpuPressure, listenOverflows: res.listenOverflows,
    };
    // Every 5 s: who the other processes were.
    if (t % 5 === 0) point.others = this.others.sample(this.known, 0.05).slice(0, 5).map((p) => [p.name, p.cores]);
    if (this.o.processes.length > 1) point.processes = res.processes.map((p) => [round2(p.cpu), Math.round(p.rss / 1048576)]);
    const tunnels = this.tunnelTotals();
    if (tunnels) {
      point.tunnelsOpen = tunnels.open;
      point.tunnelsOpening = tunnels.opening;
    }
    if (push) {
      point.pushOpen = push.open;
      point.pushConnecting = push.connecting;
    }
    this.loops = [];
    if (!final) this.timeline.push(point);
    const checkins = this.o.push
      ? `  push ${push?.open ?? 0}/${this.o.agents ?? '?'} open, ${push?.connecting ?? 0} opening, ${push?.queued ?? 0} queued, ${Object.values(push?.failed ?? {}).reduce((a, b) => a + b, 0)} failed${this.pushNote ? `  ${this.pushNote}` : ''}  check-ins ${lat.length}/s`
      : ` of ${this.o.expectedPerS.toFixed(0)}/s`;
    const line = `${final ? `[end   ] ${String(lat.length).padStart(5)} more` : `[${String(t).padStart(4)} s]${this.o.push ? '' : ` ${String(lat.length).padStart(5)}/s`}`}`
      + `${checkins}  p99 ${num(p99, 1)} ms  errors ${this.errorsSoFar}`
      + `  server ${num(res.serverCpu, 2)} cores ${num(res.serverRss / 1048576, 0)} MB`
      + `  tester ${num(res.testerCpu, 2)} cores (loop ${num(point.testerLoopBusy * 100, 0)} % busy)  machine ${num(res.machineCpu, 2)} cores`
      + `  connections ${testerConnections}/${num(this.lastServerConnections, 0)}`
      + (tunnels?.armed ? `  tunnels ${tunnels.open} open, ${tunnels.opening} opening` : '');
    if (this.tty) process.stderr.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
    else if (t % 10 === 0 || final) process.stderr.write(`${line}\n`);
  }
}
