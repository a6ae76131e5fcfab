/**
 * The push mode's figures (`--mode push`): channels opened and how long that took, server memory
 * per connection, idle server CPU with every channel open, and the time until every agent had
 * received REQUIRED after the tester asked for every environment's tunnel at once.
 */
import { OPEN_EVENT_FIELDS, STATUS_EVENT_FIELDS, type PushCounters } from './push';
import { askedForTunnel, type RequiredCalls } from './required';
import { avgMax, latencySummary, meanIn, type LatencySummary } from './stats';

/** What a push run produced (main thread), handed to the report. */
export interface PushData {
  agents: number;
  /** Agent indexes whose environments were made REQUIRED. */
  requested: number[];
  counters?: PushCounters;
  /** Every worker's events, flat (see push.ts `PushEvents`). */
  opens: number[];
  status: number[];
  /** RSS of each server process before the agents started, MB (server.processes order). */
  rssBeforeMB: number[];
  /** When the monitor first saw every channel open at once, s since the start; null: never. */
  allOpenAtS: number | null;
  openTimeoutS: number;
  /** The idle phase, s since the start; null when the run ended before one. */
  idle: [number, number] | null;
  /** Agent connections per gateway port at the end of the idle phase. */
  openByPortIdle: Record<string, number>;
  calls?: RequiredCalls;
  /** How long the tester waited for every requested agent to receive REQUIRED, s. */
  requiredTimeoutS: number;
}

/** The timeline fields the push figures read (report.ts TimelinePoint). */
export interface PushTimelinePoint {
  t: number;
  serverCpu: number;
  serverRssMB: number;
  testerCpu: number;
  testerRssMB: number;
  machineCpu: number;
  otherCpu: number;
  processes?: Array<[number, number]>;
  pushOpen?: number;
}

export interface PushProcess {
  name: string;
  pid: number;
  infra?: boolean;
  services?: string;
  port?: number;
}

export interface PushReport {
  agents: number;
  /** Every channel opened, and every requested agent received REQUIRED. */
  pass: boolean;
  open: {
    /** Agents whose check-ins offered the channel. */
    offered: number;
    /** Agents whose channel opened at least once. */
    agentsOpened: number;
    /** From the start until each agent's channel first opened: the last one (every agent's) in s, null if some never did. */
    allOpenedS: number | null;
    /** When the monitor first counted every channel open at the same time, s; null: never. */
    allOpenAtOnceS: number | null;
    /** TCP connect + TLS + upgrade of the first channel of each agent, ms. */
    handshakeMs: LatencySummary;
    /** Channels opened again after a drop or a failed attempt. */
    reopened: number;
    failed: Record<string, number>;
    dropped: Record<string, number>;
    firstErrors: Record<string, string>;
  };
  messages: Record<string, number>;
  statuses: Record<string, number>;
  pings: number;
  /** Server memory: before the agents started, and over the last (up to) 10 s of the idle phase. */
  memory: {
    windowS: [number, number] | null;
    connections: number;
    serverRssBeforeMB: number;
    serverRssMB: number;
    /** (server RSS with the connections − before) / connections, KB. */
    kbPerConnection: number;
    /** Per server process: a gateway's delta over the connections it holds, another's over all. */
    processes?: Array<{ name: string; connections: number; beforeMB: number; withMB: number; kbPerConnection: number }>;
    /** The tester's own RSS then (every process), and per connection. */
    testerRssMB: number;
    testerKBPerConnection: number;
  };
  /** CPU averaged over the whole idle phase (every channel open, nothing asked of them). */
  idleCpu: {
    windowS: [number, number] | null;
    serverCores: { avg: number; max: number };
    processes?: Array<{ name: string; infra?: boolean; cores: number }>;
    testerCores: number;
    machineCores: number;
    otherCores: number;
  };
  required: RequiredReport | null;
}

export interface RequiredReport {
  requested: number;
  path: string;
  connections: number;
  /** Opening the calls' connections before the firing, ms. */
  connectMs: number;
  /** When the first call was written, s since the start. */
  firedAtS: number;
  /** From the first call written to the last handed to the kernel, ms. */
  fireMs: number;
  /** Calls that failed before the server required the tunnel (no state leader, no free virtual tunnel port, ...): see `outcomes`. */
  callsFailed: number;
  /** Of the other agents: received REQUIRED after the firing (by push message, or by a poll while their channel was down). */
  reached: number;
  viaPush: number;
  viaPoll: number;
  /** Already REQUIRED at the firing (a first snapshot's tunnel): the reply did not change, nothing new to send. */
  alreadyRequired: number;
  /** Their call asked for the tunnel, yet they never received REQUIRED. */
  notReached: number;
  /** Agents whose call failed but that received REQUIRED anyway (a first snapshot's): not in the timings. */
  reachedOtherwise: number;
  /** From the first call written to each agent's REQUIRED: first is `min`, last `max`. */
  receivedMs: LatencySummary & { min: number };
  /** From the first call written until every requested agent had REQUIRED (or had it already), s; null if some never did or some call failed. */
  allReachedS: number | null;
  /** The calls' answers (they wait for tunnels the simulated agents never open). */
  outcomes: Record<string, number>;
  messages: Record<string, string>;
  /** Server core-seconds from the firing to the last REQUIRED received (whole seconds around it). */
  serverCoreSeconds: number;
  /** Per requested agent: [environment id, ms from the firing to REQUIRED; -1: never, -2: it was REQUIRED already, -3: its call failed]. */
  items: Array<[number, number]>;
}

/** Each agent's first channel: connect start and open, ms since the start. */
export function firstOpens(opens: readonly number[]): Map<number, { start: number; open: number }> {
  const first = new Map<number, { start: number; open: number }>();
  for (let i = 0; i + OPEN_EVENT_FIELDS <= opens.length; i += OPEN_EVENT_FIELDS) {
    const agent = opens[i];
    const prev = first.get(agent);
    if (!prev || opens[i + 2] < prev.open) first.set(agent, { start: opens[i + 1], open: opens[i + 2] });
  }
  return first;
}

/**
 * Who of `requested` received REQUIRED after `firedAt` (ms): the first such status event, by push
 * or by poll; and who was REQUIRED already at the firing (their last event before it said so).
 */
export function requiredTimings(status: readonly number[], requested: readonly number[], firedAt: number): {
  reached: Map<number, { ms: number; byPush: boolean }>;
  already: Set<number>;
} {
  const wanted = new Set(requested);
  const lastBefore = new Map<number, { t: number; required: boolean }>();
  const reached = new Map<number, { ms: number; byPush: boolean }>();
  for (let i = 0; i + STATUS_EVENT_FIELDS <= status.length; i += STATUS_EVENT_FIELDS) {
    const [agent, t, required, byPush] = [status[i], status[i + 1], status[i + 2] === 1, status[i + 3] === 1];
    if (!wanted.has(agent)) continue;
    if (t < firedAt) {
      const prev = lastBefore.get(agent);
      if (!prev || t >= prev.t) lastBefore.set(agent, { t, required });
    } else if (required) {
      const prev = reached.get(agent);
      if (!prev || t - firedAt < prev.ms) reached.set(agent, { ms: t - firedAt, byPush });
    }
  }
  const already = new Set<number>();
  for (const [agent, last] of lastBefore) if (last.required) already.add(agent);
  return { reached, already };
}

const r2 = (n: number) => (Number.isFinite(n) ? Math.round(n * 100) / 100 : n);

export function pushReport(p: PushData, timeline: readonly PushTimelinePoint[], processes: readonly PushProcess[], endpointIds: readonly number[]): PushReport {
  const c = p.counters;
  const first = firstOpens(p.opens);
  const opensList = [...first.values()];
  const allOpened = first.size >= p.agents;

  // Memory over the last 10 s of the idle phase (points cover the second before their t).
  const memW: [number, number] | null = p.idle ? [Math.max(p.idle[0] + 1, p.idle[1] - 9), p.idle[1]] : null;
  const cpuW: [number, number] | null = p.idle ? [p.idle[0] + 1, p.idle[1]] : null;
  const connections = meanIn(timeline, memW, (x) => x.pushOpen);
  const serverBefore = p.rssBeforeMB.reduce((a, x, i) => a + (processes[i]?.infra || !Number.isFinite(x) ? 0 : x), 0);
  const serverWith = meanIn(timeline, memW, (x) => x.serverRssMB);
  const kb = (before: number, after: number, n: number) => r2(((after - before) * 1024) / n);
  const several = processes.length > 1;
  const testerRss = meanIn(timeline, memW, (x) => x.testerRssMB);

  let required: RequiredReport | null = null;
  if (p.calls) {
    const fired = p.calls.firedAt;
    const perCall = p.calls.perCall;
    const asked = p.requested.filter((_, j) => askedForTunnel(perCall[j]));
    const failedCalls = p.requested.filter((_, j) => !askedForTunnel(perCall[j]));
    const { reached, already } = requiredTimings(p.status, asked, fired);
    const otherwise = requiredTimings(p.status, failedCalls, fired).reached.size;
    const failed = new Set(failedCalls);
    const ms = [...reached.values()].map((x) => x.ms);
    const alreadyOnly = [...already].filter((a) => !reached.has(a)).length;
    const done = reached.size + alreadyOnly;
    const lastMs = ms.length ? Math.max(...ms) : NaN;
    const fromS = Math.floor(fired / 1000);
    const toS = Math.ceil((fired + (Number.isFinite(lastMs) ? lastMs : 0)) / 1000) + 1;
    const coreSeconds = timeline.filter((x) => x.t > fromS && x.t <= toS).reduce((a, x) => a + (Number.isFinite(x.serverCpu) ? x.serverCpu : 0), 0);
    required = {
      requested: p.requested.length, path: p.calls.path, connections: p.calls.connections, connectMs: Math.round(p.calls.connectMs),
      firedAtS: r2(fired / 1000), fireMs: r2(p.calls.writtenAt - fired),
      callsFailed: failedCalls.length,
      reached: reached.size, viaPush: [...reached.values()].filter((x) => x.byPush).length, viaPoll: [...reached.values()].filter((x) => !x.byPush).length,
      alreadyRequired: alreadyOnly, notReached: asked.length - done, reachedOtherwise: otherwise,
      receivedMs: { ...latencySummary(ms), min: ms.length ? Math.min(...ms) : NaN },
      allReachedS: done >= p.requested.length ? r2((Number.isFinite(lastMs) ? lastMs : 0) / 1000) : null,
      outcomes: p.calls.outcomes, messages: p.calls.messages, serverCoreSeconds: r2(coreSeconds),
      items: p.requested.map((a) => [endpointIds[a] ?? a, failed.has(a) ? -3 : reached.has(a) ? Math.round(reached.get(a)!.ms) : already.has(a) ? -2 : -1]),
    };
  }

  return {
    agents: p.agents,
    pass: allOpened && (!required || required.allReachedS !== null),
    open: {
      offered: c?.offered ?? 0,
      agentsOpened: first.size,
      allOpenedS: allOpened && opensList.length ? r2(Math.max(...opensList.map((x) => x.open)) / 1000) : null,
      allOpenAtOnceS: p.allOpenAtS,
      handshakeMs: latencySummary(opensList.map((x) => x.open - x.start)),
      reopened: p.opens.length / OPEN_EVENT_FIELDS - first.size,
      failed: c?.failed ?? {}, dropped: c?.dropped ?? {}, firstErrors: c?.firstErrors ?? {},
    },
    messages: c?.messages ?? {},
    statuses: c?.statuses ?? {},
    pings: c?.pings ?? 0,
    memory: {
      windowS: memW,
      connections: r2(connections),
      serverRssBeforeMB: r2(serverBefore),
      serverRssMB: r2(serverWith),
      kbPerConnection: kb(serverBefore, serverWith, connections),
      processes: several ? processes.map((proc, i) => ({ proc, i })).filter(({ proc }) => !proc.infra).map(({ proc, i }) => {
        const n = proc.port !== undefined && p.openByPortIdle[proc.port] !== undefined ? p.openByPortIdle[proc.port] : connections;
        const withMB = meanIn(timeline, memW, (x) => x.processes?.[i]?.[1]);
        return { name: proc.name, connections: n, beforeMB: r2(p.rssBeforeMB[i]), withMB: r2(withMB), kbPerConnection: kb(p.rssBeforeMB[i], withMB, n) };
      }) : undefined,
      testerRssMB: r2(testerRss),
      testerKBPerConnection: r2((testerRss * 1024) / connections),
    },
    idleCpu: {
      windowS: cpuW,
      serverCores: ((w) => ({ avg: r2(w.avg), max: r2(w.max) }))(avgMax(cpuW ? timeline.filter((x) => x.t >= cpuW[0] && x.t <= cpuW[1]).map((x) => x.serverCpu) : [])),
      processes: several ? processes.map((proc, i) => ({ name: proc.name, infra: proc.infra, cores: r2(meanIn(timeline, cpuW, (x) => x.processes?.[i]?.[0])) })) : undefined,
      testerCores: r2(meanIn(timeline, cpuW, (x) => x.testerCpu)),
      machineCores: r2(meanIn(timeline, cpuW, (x) => x.machineCpu)),
      otherCores: r2(meanIn(timeline, cpuW, (x) => x.otherCpu)),
    },
    required,
  };
}
