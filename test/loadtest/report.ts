/**
 * The load test's result: a JSON-able report built from the samples and the per-second timeline,
 * the targets it is judged by, and the table printed at the end.
 */
import type { ServerLog } from './server';
import { avgMax, firstCheckinsEnd, indexesInWindow, outcomeLabel, summarize, type CheckinSummary, type SampleBatch } from './stats';

/** Portainer's published figure (reference 7): 7 Mbps for 15,000 agents polling every 5 s. */
export const PORTAINER = {
  bytesPerCheckin: 290,
  note: "Portainer's docs: 15,000 agents at 5 s = ~7 Mbps into the server, i.e. ~290 B per check-in (2019 figure, before ETag/304; direction and layer not stated)",
};

/** The targets, judged on the steady state. */
export const TARGETS = { answeredPct: 99.9, p99Ms: 50, serverCpuCores: 1 };

/** One second of the run. */
export interface TimelinePoint {
  /** Seconds since the run started. */
  t: number;
  /** Check-ins that ended in this second, how many were not answered, and their p99 latency (ms). */
  checkins: number;
  errors: number;
  p99: number;
  serverCpu: number;
  serverRssMB: number;
  testerCpu: number;
  testerRssMB: number;
  /** The tester's established agent connections. */
  testerConnections: number;
  /** ESTABLISHED sockets with the server port as local port (sampled every 5 s; NaN in between). */
  serverConnections: number;
  /** Busiest worker's event loop utilisation (0-1) and timer lateness p99 (ms; or how long a worker went silent). */
  testerLoopBusy: number;
  testerLoopDelayMs: number;
  /** Cores busy on the machine, by everyone; by processes that are neither the server nor the tester; CPU pressure (PSI some avg10, %). */
  machineCpu: number;
  otherCpu: number;
  cpuPressure: number;
  /** Connections dropped by a full accept queue in this second (whole machine). */
  listenOverflows: number;
}

/** Everything the run produced, handed to `buildReport`. */
export interface RunData {
  startedAt: string;
  runStartEpochMs: number;
  config: Record<string, unknown>;
  target: string;
  server: { embedded: boolean; pids: number[]; note: string };
  setup: Record<string, unknown>;
  agents: number;
  intervalS: number;
  durationS: number;
  rampS: number;
  /** Fixed warm-up, or undefined for the automatic one (see `warmupOf`). */
  warmupS?: number;
  slowMs: number;
  samples: SampleBatch;
  /** endpoint id of each agent index. */
  endpointIds: number[];
  timeline: TimelinePoint[];
  counters: { handshakes: number; resumed: number; idleCloses: number; lateTicks: number; messages: Record<string, string> };
  serverLog?: ServerLog;
}

export interface WindowReport extends CheckinSummary {
  fromS: number;
  toS: number;
  achievedPerS: number;
  expectedPerS: number;
  /** Mean Mbit/s into plus out of the server, HTTP bytes and TLS (TCP payload) bytes. */
  trafficMbps: { http: number; wire: number };
  serverCpuCores: { avg: number; max: number };
  serverRssMB: { avg: number; max: number };
  testerCpuCores: { avg: number; max: number };
  serverConnections: { avg: number; max: number };
  testerConnections: { avg: number; max: number };
  testerLoopBusy: { avg: number; max: number };
  testerLoopDelayMs: { avg: number; max: number };
  machineCpuCores: { avg: number; max: number };
  otherCpuCores: { avg: number; max: number };
  cpuPressurePct: { avg: number; max: number };
  /** Connections the kernel dropped because an accept queue was full (whole machine). */
  listenOverflows: number;
}

export interface SlowCheckin {
  /** Start, s since the run start. */
  t: number;
  agent: number;
  endpointId: number;
  latencyMs: number;
  outcome: string;
  /** The server's warn/error log line nearest to the check-in, within 1 s of it. */
  cause?: { t: number; level: string; msg: string };
}

export interface Report {
  tool: 'capstan-loadtest';
  startedAt: string;
  target: string;
  config: Record<string, unknown>;
  server: RunData['server'];
  setup: Record<string, unknown>;
  warmup: Warmup;
  /** From when on every second met the latency target without errors (s), or null if the run never settled. */
  settledAtS: number | null;
  steadyDefinition: string;
  total: WindowReport;
  steady: WindowReport;
  targets: Array<{ name: string; target: string; value: number; pass: boolean }>;
  pass: boolean;
  /** Reasons the steady-state figures may measure the tester or the machine rather than the server. */
  warnings: string[];
  /** Check-ins slower than the threshold (items by start time, at most 1000). */
  slow: { thresholdMs: number; count: number; steadyCount: number; items: SlowCheckin[] };
  slowest: { fraction: number; count: number; fromMs: number; items: SlowCheckin[] };
  connections: RunData['counters'];
  serverLog?: { lines: number; warnOrWorse: number; sample: Array<{ t: number; level: string; msg: string }> };
  portainer: typeof PORTAINER;
  timeline: TimelinePoint[];
}

const MAX_LISTED = 1000;

/** How the warm-up was decided. */
export interface Warmup {
  seconds: number;
  how: 'fixed' | 'auto';
  /** When every agent's first check-in (connection and TLS handshake included) had ended, s. */
  firstCheckinsEndedS: number;
  agentsWithoutCheckin: number;
  /** Auto warm-up cut at half the run: the ramp had not finished by then. */
  capped: boolean;
}

/**
 * The warm-up: fixed by --warmup, or automatic: the ramp (first check-ins spread over it), extended
 * until every agent's first check-in has ended, since a storm of TLS handshakes can outlast the
 * ramp; at most half the run, so a ramp that never ends still leaves a measured (failing) half.
 */
export function warmupOf(d: Pick<RunData, 'samples' | 'agents' | 'rampS' | 'warmupS' | 'durationS'>): Warmup {
  const first = firstCheckinsEnd(d.samples, d.agents);
  const firstCheckinsEndedS = round(first.endMs / 1000, 3);
  if (d.warmupS !== undefined) return { seconds: d.warmupS, how: 'fixed', firstCheckinsEndedS, agentsWithoutCheckin: first.agentsWithout, capped: false };
  const want = first.agentsWithout ? Infinity : Math.max(d.rampS, Math.ceil(first.endMs / 100) / 10);
  const cap = d.durationS / 2;
  return { seconds: Math.min(want, Math.max(cap, d.rampS)), how: 'auto', firstCheckinsEndedS, agentsWithoutCheckin: first.agentsWithout, capped: want > Math.max(cap, d.rampS) };
}

export function buildReport(d: RunData): Report {
  const expectedPerS = d.agents / d.intervalS;
  const window = (fromS: number, toS: number): WindowReport => {
    const idx = indexesInWindow(d.samples, fromS * 1000, toS * 1000);
    const s = summarize(d.samples, idx);
    const points = d.timeline.filter((p) => p.t > fromS && p.t <= toS);
    const pick = (f: (p: TimelinePoint) => number) => avgMax(points.map(f));
    const perS = s.attempted / (toS - fromS);
    const mbps = (bytes: number) => (bytes * perS * 8) / 1e6;
    return {
      fromS, toS, ...s, achievedPerS: perS, expectedPerS,
      trafficMbps: { http: mbps(s.bytes.httpIn + s.bytes.httpOut), wire: mbps(s.bytes.wireIn + s.bytes.wireOut) },
      serverCpuCores: pick((p) => p.serverCpu), serverRssMB: pick((p) => p.serverRssMB), testerCpuCores: pick((p) => p.testerCpu),
      serverConnections: pick((p) => p.serverConnections), testerConnections: pick((p) => p.testerConnections),
      testerLoopBusy: pick((p) => p.testerLoopBusy), testerLoopDelayMs: pick((p) => p.testerLoopDelayMs),
      machineCpuCores: pick((p) => p.machineCpu), otherCpuCores: pick((p) => p.otherCpu), cpuPressurePct: pick((p) => p.cpuPressure),
      listenOverflows: points.reduce((a, p) => a + (Number.isFinite(p.listenOverflows) ? p.listenOverflows : 0), 0),
    };
  };
  const warmup = warmupOf(d);
  const total = window(0, d.durationS);
  const steady = window(warmup.seconds, d.durationS);
  const targets = [
    { name: 'answered (2xx/304)', target: `>= ${TARGETS.answeredPct} %`, value: steady.answeredPct, pass: steady.answeredPct >= TARGETS.answeredPct },
    { name: 'latency p99', target: `<= ${TARGETS.p99Ms} ms`, value: steady.latencyMs.p99, pass: steady.latencyMs.p99 <= TARGETS.p99Ms },
    { name: 'server CPU (average)', target: `<= ${TARGETS.serverCpuCores} core`, value: steady.serverCpuCores.avg, pass: steady.serverCpuCores.avg <= TARGETS.serverCpuCores },
  ];

  // The last second that missed; the run settled the second after it.
  const within = d.timeline.filter((p) => p.t <= d.durationS);
  let lastBad = 0;
  for (const p of within) if (p.errors > 0 || !(p.p99 <= TARGETS.p99Ms)) lastBad = p.t;
  const settledAtS = within.length && lastBad < within[within.length - 1].t ? lastBad : null;

  const warnings: string[] = [];
  const cpus = Number((d.config as { cpus?: number }).cpus ?? NaN);
  if (steady.testerLoopBusy.avg > 0.8 || steady.testerLoopDelayMs.max > 100) {
    warnings.push(`the tester was saturated (worker event loop ${Math.round(steady.testerLoopBusy.avg * 100)} % busy on average, timers up to ${Math.round(steady.testerLoopDelayMs.max)} ms late): latencies include the tester's own delay`);
  }
  if (steady.machineCpuCores.avg > 0.9 * cpus) {
    warnings.push(`the machine was saturated (${steady.machineCpuCores.avg.toFixed(2)} of ${cpus} cores busy on average, ${steady.otherCpuCores.avg.toFixed(2)} by other processes; CPU pressure ${steady.cpuPressurePct.avg.toFixed(0)} %): server and tester waited for CPU`);
  }

  const item = (i: number): SlowCheckin => {
    const s = d.samples;
    const startEpoch = d.runStartEpochMs + s.t[i];
    const out: SlowCheckin = { t: round(s.t[i] / 1000, 3), agent: s.agent[i], endpointId: d.endpointIds[s.agent[i]], latencyMs: round(s.latency[i], 1), outcome: outcomeLabel(s.code[i]) };
    const near = d.serverLog?.nearest(startEpoch, startEpoch + s.latency[i]);
    if (near) out.cause = { t: round((near.time - d.runStartEpochMs) / 1000, 3), level: near.level, msg: near.msg.slice(0, 300) };
    return out;
  };
  const all = indexesInWindow(d.samples, -Infinity, Infinity);
  const slowIdx = [...all].filter((i) => d.samples.latency[i] > d.slowMs).sort((a, b) => d.samples.t[a] - d.samples.t[b]);
  const byLatency = [...all].sort((a, b) => d.samples.latency[b] - d.samples.latency[a]);
  const slowestCount = Math.ceil(all.length * 0.001);
  const slowest = byLatency.slice(0, slowestCount);

  return {
    tool: 'capstan-loadtest',
    startedAt: d.startedAt,
    target: d.target,
    config: d.config,
    server: d.server,
    setup: d.setup,
    warmup,
    settledAtS,
    steadyDefinition: `check-ins started from ${warmup.seconds} s to ${d.durationS} s`
      + (warmup.how === 'fixed' ? ' (warm-up fixed by --warmup)'
        : warmup.capped ? ` (warm-up cut at half the run: the first check-ins had not all ended${warmup.agentsWithoutCheckin ? `, ${warmup.agentsWithoutCheckin} agents never ended one` : ` until ${warmup.firstCheckinsEndedS} s`})`
          : ` (warm-up: the ${d.rampS} s ramp${warmup.seconds > d.rampS ? `, extended until every agent's first check-in had ended` : ''})`),
    total,
    steady,
    targets,
    pass: targets.every((t) => t.pass),
    warnings,
    slow: {
      thresholdMs: d.slowMs, count: slowIdx.length, steadyCount: slowIdx.filter((i) => d.samples.t[i] >= warmup.seconds * 1000).length,
      // The steady state's first: they are the ones the targets are about.
      items: [...slowIdx.filter((i) => d.samples.t[i] >= warmup.seconds * 1000), ...slowIdx.filter((i) => d.samples.t[i] < warmup.seconds * 1000)]
        .slice(0, MAX_LISTED).map(item).sort((a, b) => a.t - b.t),
    },
    slowest: { fraction: 0.001, count: slowest.length, fromMs: slowest.length ? round(d.samples.latency[slowest[slowest.length - 1]], 1) : NaN, items: slowest.slice(0, MAX_LISTED).map(item) },
    connections: d.counters,
    serverLog: d.serverLog && {
      lines: d.serverLog.total, warnOrWorse: d.serverLog.warnOrWorse,
      sample: d.serverLog.lines.slice(0, 50).map((l) => ({ t: round((l.time - d.runStartEpochMs) / 1000, 3), level: l.level, msg: l.msg.slice(0, 300) })),
    },
    portainer: PORTAINER,
    timeline: d.timeline,
  };
}

const round = (n: number, digits: number) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);
