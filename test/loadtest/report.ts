/**
 * The load test's result: a JSON-able report built from the samples and the per-second timeline,
 * the targets it is judged by, and the table printed at the end.
 */
import { pushReport, type PushData, type PushReport } from './pushreport';
import type { ServerLog } from './server';
import { avgMax, firstCheckinsEnd, indexesInWindow, latencySummary, meanIn, meanOver, outcomeLabel, summarize, type CheckinSummary, type LatencySummary, type SampleBatch } from './stats';
import type { StormCalls } from './storm';
import type { TunnelCounters, TunnelOpenEvent } from './tunnels';

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
  /**
   * Cores busy on the machine, by everyone; by processes that are neither the server, the tester
   * nor NATS/Redis (kernel softirq included); of the machine's, in softirq; CPU pressure (PSI some avg10, %).
   */
  machineCpu: number;
  otherCpu: number;
  softirqCpu?: number;
  cpuPressure: number;
  /** Connections dropped by a full accept queue in this second (whole machine). */
  listenOverflows: number;
  /** Several processes sampled (distributed shape): [cores, RSS MB] of each, in `server.processes` order. */
  processes?: Array<[number, number]>;
  /** Every 5 s: the busiest other processes over those 5 s, [name, cores]. */
  others?: Array<[string, number]>;
  /** Storm: the storm agents' tunnels open, and being opened. */
  tunnelsOpen?: number;
  tunnelsOpening?: number;
  /** Push mode: channels open, and being opened. */
  pushOpen?: number;
  pushConnecting?: number;
}

/** A sampled process as the report names it. */
export interface ReportProcess {
  name: string;
  pid: number;
  infra?: boolean;
  services?: string;
  /** A gateway's HTTPS port. */
  port?: number;
}

/** Everything the run produced, handed to `buildReport`. */
export interface RunData {
  startedAt: string;
  runStartEpochMs: number;
  config: Record<string, unknown>;
  target: string;
  server: { embedded: boolean; shape?: string; pids: number[]; processes: ReportProcess[]; note: string };
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
  storm?: StormData;
  /** Push mode: its phases and events; the steady state is its idle phase. */
  push?: PushData;
}

/** What a tunnel storm produced. */
export interface StormData {
  agents: number;
  /** When it was fired, s since the start (undefined: never). */
  atS?: number;
  /** Undefined when the storm was never fired (run cut short). */
  calls?: StormCalls;
  tunnels?: TunnelCounters;
  events: TunnelOpenEvent[];
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
  softirqCpuCores: { avg: number; max: number };
  cpuPressurePct: { avg: number; max: number };
  /** Connections the kernel dropped because an accept queue was full (whole machine). */
  listenOverflows: number;
  /** Each sampled process, when there are several (distributed shape; NATS and Redis marked infra). */
  processes?: Array<ReportProcess & { cpuCores: { avg: number; max: number }; rssMB: { avg: number; max: number } }>;
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
  serverLog?: { lines: number; warnOrWorse: number; expected: number; sample: Array<{ t: number; level: string; msg: string }> };
  portainer: typeof PORTAINER;
  storm?: StormReport;
  push?: PushReport;
  timeline: TimelinePoint[];
}

/** The tunnel storm's figures. */
export interface StormReport {
  agents: number;
  path: string;
  timeoutMs: number;
  /** Fired at, s since the start; null if it never was. */
  firedAtS: number | null;
  /** Opening the calls' connections before the firing took this long, ms. */
  connectMs: number;
  /** Every call answered 200. */
  pass: boolean;
  calls: {
    count: number;
    answered200: number;
    outcomes: Record<string, number>;
    /** The server's first answer per failing outcome. */
    messages: Record<string, string>;
    /** From the firing to each call's end (every call started at the firing). */
    latencyMs: LatencySummary;
    /** From the firing until every call had answered 200; null if some did not. */
    allAnsweredS: number | null;
    /** From the firing until the last call ended, whatever its outcome. */
    lastEndedS: number;
  };
  tunnels: {
    /** Distinct storm agents whose tunnel opened. */
    agentsOpened: number;
    opened: number;
    /** Tunnels open in the run's last second. */
    openAtEnd: number;
    failed: Record<string, number>;
    dropped: number;
    closedIdle: number;
    /** Requests the stand-in agent API answered through the tunnels, by path. */
    served: Record<string, number>;
    /** From the firing until every storm agent's tunnel had opened; null if some never did. */
    allOpenS: number | null;
    /** From the firing to the check-in that brought REQUIRED, per agent (its first tunnel). */
    requiredSeenMs: LatencySummary;
    /** From that check-in's answer to the tunnel open (WebSocket, SSH, login, config), per agent. */
    setupMs: LatencySummary;
  };
  memory: {
    /** Timeline seconds averaged: before the firing, a few seconds after the last call, the run's end. */
    beforeS: [number, number];
    afterS: [number, number] | null;
    endS: [number, number];
    tunnelsOpenAfter: number;
    tunnelsOpenEnd: number;
    serverRssBeforeMB: number;
    serverRssAfterMB: number;
    serverRssEndMB: number;
    /** (server RSS after - before) / tunnels open, KB; and the same at the run's end. */
    serverKBPerTunnel: number;
    serverKBPerTunnelEnd: number;
    /** Per process (distributed shape). */
    processes?: Array<{ name: string; beforeMB: number; afterMB: number; endMB: number; kbPerTunnel: number }>;
    testerRssBeforeMB: number;
    testerRssAfterMB: number;
    testerKBPerTunnel: number;
  };
  cpu: {
    /** Seconds summed: from the firing to one second after the last call. */
    windowS: [number, number];
    /** Core-seconds above the 10 s before the firing (baseline: check-ins alone). */
    serverCoreSeconds: number;
    testerCoreSeconds: number;
    serverMsPerTunnel: number;
    testerMsPerTunnel: number;
  };
  /** The fleet's check-ins started while the calls were running. */
  checkins: { fromS: number; toS: number; attempted: number; answeredPct: number; errors: Record<string, number>; latencyMs: LatencySummary };
  /**
   * Every call and its agent's first tunnel, ms after the firing: [environment, gateway, call ended,
   * outcome, REQUIRED seen by the agent, tunnel open] (-1: the agent opened none).
   */
  items: Array<[number, number, number, string, number, number]>;
}

const MAX_LISTED = 1000;

/** How the warm-up was decided. */
export interface Warmup {
  seconds: number;
  how: 'fixed' | 'auto';
  /** When every agent's first check-in (connection and TLS handshake included) had ended, s. */
  firstCheckinsEndedS: number;
  agentsWithoutCheckin: number;
  /**
   * When every agent had had a check-in answered (the fleet was up), s: later than the above when
   * first check-ins failed (a timeout in the handshake storm) and were retried.
   */
  fleetUpS: number;
  agentsNeverAnswered: number;
  /** Auto warm-up cut at half the run: the ramp had not finished by then. */
  capped: boolean;
}

/**
 * The warm-up: fixed by --warmup, or automatic: the ramp (first check-ins spread over it), extended
 * until every agent has had a check-in answered (the fleet is up), since a storm of TLS handshakes
 * can outlast the ramp and first check-ins that time out are retried, plus one check-in interval,
 * in which the requests queued behind the last handshakes drain; at most half the run, so a ramp
 * that never ends still leaves a measured (failing) half.
 */
export function warmupOf(d: Pick<RunData, 'samples' | 'agents' | 'rampS' | 'warmupS' | 'durationS' | 'intervalS'>): Warmup {
  const first = firstCheckinsEnd(d.samples, d.agents);
  const seen = {
    firstCheckinsEndedS: round(first.endMs / 1000, 3), agentsWithoutCheckin: first.agentsWithout,
    fleetUpS: round(first.answeredEndMs / 1000, 3), agentsNeverAnswered: first.agentsUnanswered,
  };
  if (d.warmupS !== undefined) return { seconds: d.warmupS, how: 'fixed', ...seen, capped: false };
  const want = first.agentsUnanswered ? Infinity : Math.max(d.rampS, Math.ceil(Math.max(first.endMs, first.answeredEndMs + d.intervalS * 1000) / 100) / 10);
  const cap = d.durationS / 2;
  return { seconds: Math.min(want, Math.max(cap, d.rampS)), how: 'auto', ...seen, capped: want > Math.max(cap, d.rampS) };
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
      machineCpuCores: pick((p) => p.machineCpu), otherCpuCores: pick((p) => p.otherCpu), softirqCpuCores: pick((p) => p.softirqCpu ?? NaN), cpuPressurePct: pick((p) => p.cpuPressure),
      listenOverflows: points.reduce((a, p) => a + (Number.isFinite(p.listenOverflows) ? p.listenOverflows : 0), 0),
      processes: d.server.processes.length > 1
        ? d.server.processes.map((proc, i) => ({ ...proc, cpuCores: pick((p) => p.processes?.[i]?.[0] ?? NaN), rssMB: pick((p) => p.processes?.[i]?.[1] ?? NaN) }))
        : undefined,
    };
  };
  const warmup = warmupOf(d);
  const total = window(0, d.durationS);
  // Push mode: the idle phase, every channel open (check-ins are only the binding ones and fallbacks).
  const idle = d.push?.idle;
  const steady = d.push ? window(idle?.[0] ?? d.durationS, idle?.[1] ?? d.durationS) : window(warmup.seconds, d.durationS);
  const push = d.push && pushReport(d.push, d.timeline, d.server.processes, d.endpointIds);
  const targets = push ? [
    { name: 'push channels opened', target: `= ${push.agents}`, value: push.open.agentsOpened, pass: push.open.agentsOpened >= push.agents },
    ...(push.required ? [{
      name: 'REQUIRED received', target: `= ${push.required.requested}`, value: push.required.requested - push.required.notReached, pass: push.required.notReached === 0,
    }] : []),
  ] : [
    { name: 'answered (2xx/304)', target: `>= ${TARGETS.answeredPct} %`, value: steady.answeredPct, pass: steady.answeredPct >= TARGETS.answeredPct },
    { name: 'latency p99', target: `<= ${TARGETS.p99Ms} ms`, value: steady.latencyMs.p99, pass: steady.latencyMs.p99 <= TARGETS.p99Ms },
    { name: 'server CPU (average)', target: `<= ${TARGETS.serverCpuCores} core`, value: steady.serverCpuCores.avg, pass: steady.serverCpuCores.avg <= TARGETS.serverCpuCores },
  ];

  // The last second that missed; the run settled the second after it (push mode: not about check-ins).
  const within = d.timeline.filter((p) => p.t <= d.durationS);
  let lastBad = 0;
  for (const p of within) if (p.errors > 0 || !(p.p99 <= TARGETS.p99Ms)) lastBad = p.t;
  const settledAtS = !push && within.length && lastBad < within[within.length - 1].t ? lastBad : null;

  const warnings: string[] = [];
  const cpus = Number((d.config as { cpus?: number }).cpus ?? NaN);
  if (steady.testerLoopBusy.avg > 0.8 || steady.testerLoopDelayMs.max > 100) {
    warnings.push(`the tester was saturated (worker event loop ${Math.round(steady.testerLoopBusy.avg * 100)} % busy on average, timers up to ${Math.round(steady.testerLoopDelayMs.max)} ms late): latencies include the tester's own delay`);
  }
  // Who the others were over the steady state (sampled every 5 s).
  const whoElse = new Map<string, number[]>();
  for (const p of d.timeline) {
    if (p.t <= warmup.seconds || !p.others) continue;
    for (const [name, cores] of p.others) whoElse.set(name, [...(whoElse.get(name) ?? []), cores]);
  }
  const samples5 = d.timeline.filter((p) => p.t > warmup.seconds && p.others).length || 1;
  const busiest = [...whoElse].map(([name, v]) => ({ name, avg: v.reduce((a, b) => a + b, 0) / samples5 }))
    .filter((x) => x.avg >= 0.05).sort((a, b) => b.avg - a.avg).slice(0, 4);
  if (steady.otherCpuCores.avg >= 0.1) {
    warnings.push(`other processes used ${steady.otherCpuCores.avg.toFixed(2)} cores on average in the steady state (max ${steady.otherCpuCores.max.toFixed(2)})`
      + (busiest.length ? `: ${busiest.map((b) => `${b.name} ${b.avg.toFixed(2)}`).join(', ')}` : ''));
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
    steadyDefinition: push ? (idle ? `the idle phase, every push channel open, ${idle[0]}-${idle[1]} s (check-ins: fallbacks of dropped channels only)` : 'no idle phase (the run ended before every channel was open)')
      : `check-ins started from ${warmup.seconds} s to ${d.durationS} s`
      + (warmup.how === 'fixed' ? ' (warm-up fixed by --warmup)'
        : warmup.capped ? ` (warm-up cut at half the run: not every agent had had a check-in answered${warmup.agentsNeverAnswered ? `, ${warmup.agentsNeverAnswered} agents never had one` : ` until ${warmup.fleetUpS} s`})`
          : ` (warm-up: the ${d.rampS} s ramp${warmup.seconds > d.rampS ? `, extended until every agent had had a check-in answered, plus one ${d.intervalS} s interval` : ''})`),
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
      lines: d.serverLog.total, warnOrWorse: d.serverLog.warnOrWorse, expected: d.serverLog.expected,
      sample: d.serverLog.lines.slice(0, 50).map((l) => ({ t: round((l.time - d.runStartEpochMs) / 1000, 3), level: l.level, msg: l.msg.slice(0, 300) })),
    },
    portainer: PORTAINER,
    storm: d.storm && stormReport(d, d.storm),
    push,
    timeline: d.timeline,
  };
}

export function stormReport(d: RunData, st: StormData): StormReport {
  const c = st.calls;
  const tl = d.timeline;
  const calls = c?.calls ?? [];
  const fired = c?.firedAt ?? NaN;
  const outcomes: Record<string, number> = {};
  for (const x of calls) outcomes[x.outcome] = (outcomes[x.outcome] ?? 0) + 1;
  const ok = calls.filter((x) => x.outcome === '200');
  const lastEnd = calls.length ? Math.max(...calls.map((x) => x.end)) : NaN;
  const firstOpen = new Map<number, TunnelOpenEvent>();
  for (const e of [...st.events].sort((a, b) => a.openAt - b.openAt)) if (!firstOpen.has(e.agent)) firstOpen.set(e.agent, e);
  const opens = [...firstOpen.values()];
  const tn = st.tunnels;

  // Memory: timeline seconds (each point covers the second before its t).
  const firedS = Math.floor(fired / 1000);
  const doneS = Math.ceil(lastEnd / 1000);
  // The run's end: the agents close their tunnels after it.
  const lastS = Math.min(d.durationS, tl.length ? tl[tl.length - 1].t : 0);
  const atEnd = tl.filter((p) => p.t <= lastS).at(-1);
  const beforeS: [number, number] = [Math.floor(st.atS ?? fired / 1000) - 4, Math.floor(st.atS ?? fired / 1000)];
  const afterS: [number, number] | null = doneS + 8 <= lastS ? [doneS + 5, doneS + 8] : null;
  const endS: [number, number] = [lastS - 2, lastS];
  const rss = (w: [number, number] | null, f: (p: TimelinePoint) => number | undefined) => meanIn(tl, w, f);
  const openAfter = rss(afterS, (p) => p.tunnelsOpen);
  const openEnd = rss(endS, (p) => p.tunnelsOpen);
  const perTunnel = (before: number, after: number, n: number) => ((after - before) * 1024) / n;
  const serverBefore = rss(beforeS, (p) => p.serverRssMB);
  const serverAfter = rss(afterS, (p) => p.serverRssMB);
  const serverEnd = rss(endS, (p) => p.serverRssMB);
  const testerBefore = rss(beforeS, (p) => p.testerRssMB);
  const testerAfter = rss(afterS, (p) => p.testerRssMB);

  // CPU above the baseline of the 10 s before the storm began (its connections were opened first).
  const windowS: [number, number] = [firedS + 1, doneS + 1];
  const beganS = Math.floor(st.atS ?? fired / 1000);
  const excess = (f: (p: TimelinePoint) => number) => {
    const base = meanOver(tl, beganS - 9, beganS, f);
    return tl.filter((p) => p.t >= windowS[0] && p.t <= windowS[1]).reduce((a, p) => a + (Number.isFinite(f(p)) ? f(p) - base : 0), 0);
  };
  const serverCoreSeconds = excess((p) => p.serverCpu);
  const testerCoreSeconds = excess((p) => p.testerCpu);
  const n = opens.length;

  const idx = Number.isFinite(fired) ? indexesInWindow(d.samples, fired, lastEnd) : new Uint32Array();
  const during = summarize(d.samples, idx);
  const r2 = (x: number) => round(x, 2);
  return {
    agents: st.agents,
    path: c?.path ?? '',
    timeoutMs: c?.timeoutMs ?? NaN,
    firedAtS: c ? round(fired / 1000, 3) : null,
    connectMs: c ? Math.round(c.connectMs) : NaN,
    pass: !!c && ok.length === calls.length && calls.length === st.agents,
    calls: {
      count: calls.length,
      answered200: ok.length,
      outcomes,
      messages: c?.messages ?? {},
      latencyMs: latencySummary(calls.map((x) => x.end - fired)),
      allAnsweredS: calls.length && ok.length === calls.length ? round((lastEnd - fired) / 1000, 3) : null,
      lastEndedS: round((lastEnd - fired) / 1000, 3),
    },
    tunnels: {
      agentsOpened: n,
      opened: tn?.opened ?? 0,
      openAtEnd: atEnd?.tunnelsOpen ?? 0,
      failed: tn?.failed ?? {},
      dropped: tn?.dropped ?? 0,
      closedIdle: tn?.closedIdle ?? 0,
      served: tn?.served ?? {},
      allOpenS: n >= st.agents ? round((Math.max(...opens.map((e) => e.openAt)) - fired) / 1000, 3) : null,
      requiredSeenMs: latencySummary(opens.map((e) => e.requiredAt - fired)),
      setupMs: latencySummary(opens.map((e) => e.openAt - e.requiredAt)),
    },
    memory: {
      beforeS, afterS, endS,
      tunnelsOpenAfter: r2(openAfter), tunnelsOpenEnd: r2(openEnd),
      serverRssBeforeMB: r2(serverBefore), serverRssAfterMB: r2(serverAfter), serverRssEndMB: r2(serverEnd),
      serverKBPerTunnel: r2(perTunnel(serverBefore, serverAfter, openAfter)),
      serverKBPerTunnelEnd: r2(perTunnel(serverBefore, serverEnd, openEnd)),
      processes: d.server.processes.length > 1 ? d.server.processes.map((proc, i) => {
        const b = rss(beforeS, (p) => p.processes?.[i]?.[1]);
        const a = rss(afterS, (p) => p.processes?.[i]?.[1]);
        return { name: proc.name, infra: proc.infra, beforeMB: r2(b), afterMB: r2(a), endMB: r2(rss(endS, (p) => p.processes?.[i]?.[1])), kbPerTunnel: r2(perTunnel(b, a, openAfter)) };
      }).filter((p) => !p.infra).map(({ infra: _infra, ...p }) => p) : undefined,
      testerRssBeforeMB: r2(testerBefore), testerRssAfterMB: r2(testerAfter), testerKBPerTunnel: r2(perTunnel(testerBefore, testerAfter, openAfter)),
    },
    cpu: {
      windowS, serverCoreSeconds: r2(serverCoreSeconds), testerCoreSeconds: r2(testerCoreSeconds),
      serverMsPerTunnel: r2((serverCoreSeconds * 1000) / n), testerMsPerTunnel: r2((testerCoreSeconds * 1000) / n),
    },
    checkins: { fromS: round(fired / 1000, 3), toS: round(lastEnd / 1000, 3), attempted: during.attempted, answeredPct: during.answeredPct, errors: during.errors, latencyMs: during.latencyMs },
    items: calls.map((x) => {
      const agent = d.endpointIds.indexOf(x.endpointId);
      const e = firstOpen.get(agent);
      return [x.endpointId, x.gateway, Math.round(x.end - fired), x.outcome, e ? Math.round(e.requiredAt - fired) : -1, e ? Math.round(e.openAt - fired) : -1];
    }),
  };
}

const round = (n: number, digits: number) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);
