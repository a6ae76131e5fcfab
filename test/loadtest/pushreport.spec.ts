import { buildReport, type RunData } from './report';
import { firstOpens, pushReport, requiredTimings, type PushData, type PushTimelinePoint } from './pushreport';
import { spreadPick } from './pushrun';
import { NOT_ANSWERED } from './required';
import { SampleBuilder } from './stats';
import { renderTable } from './table';

const TIMEOUT = 'HTTP 503: The environment did not open its tunnel in time; its agent may be offline';
const NO_LEADER = 'HTTP 503: No state leader is available; retry shortly';

describe('push events', () => {
  it('takes each agent\'s first channel opening', () => {
    // [agent, connect start, open]: agent 2 reopened later.
    const first = firstOpens([1, 100, 150, 2, 120, 400, 2, 9000, 9100]);
    expect([...first]).toEqual([[1, { start: 100, open: 150 }], [2, { start: 120, open: 400 }]]);
  });

  it('finds who received REQUIRED after the firing, by push or by poll, and who had it already', () => {
    const fired = 10_000;
    // [agent, t, required, by push]
    const status = [
      1, 5000, 1, 1, // agent 1: REQUIRED before (a first snapshot) ...
      1, 10_400, 1, 1, // ... and again, new credentials, after: reached
      2, 3000, 1, 1, 2, 4000, 0, 1, // agent 2: REQUIRED then IDLE before; then by poll after
      2, 12_500, 1, 0,
      3, 6000, 1, 1, // agent 3: still REQUIRED at the firing, nothing new
      4, 11_000, 0, 1, // agent 4: only IDLE after: not reached
      5, 10_100, 1, 1, // agent 5: not requested
      6, 10_900, 1, 1, 6, 10_300, 1, 1, // agent 6: events out of order across workers: the earliest counts
    ];
    const { reached, already } = requiredTimings(status, [1, 2, 3, 4, 6], fired);
    expect([...reached].sort((a, b) => a[0] - b[0])).toEqual([[1, { ms: 400, byPush: true }], [2, { ms: 2500, byPush: false }], [6, { ms: 300, byPush: true }]]);
    expect([...already]).toEqual([1, 3]);
  });

  it('spreads the requested agents evenly', () => {
    expect(spreadPick(10, 4)).toEqual([0, 2, 5, 7]);
    expect(spreadPick(3, 3)).toEqual([0, 1, 2]);
    expect(spreadPick(5, 0)).toEqual([]);
  });
});

/** 40 s: 2 agents connect in the first 3 s, idle 10-30 s, REQUIRED fired at 31 s. */
function data(perCall: string[]): { d: PushData; timeline: PushTimelinePoint[] } {
  const timeline = Array.from({ length: 40 }, (_, i): PushTimelinePoint => ({
    t: i + 1, serverCpu: i + 1 > 10 && i + 1 <= 30 ? 0.05 : 0.8, serverRssMB: i + 1 > 3 ? 102 : 100, testerCpu: 0.01, testerRssMB: 50,
    machineCpu: 0.3, otherCpu: 0.2, processes: [[0.01, i + 1 > 3 ? 61 : 60], [0.04, i + 1 > 3 ? 41 : 40], [0.5, 7]], pushOpen: i + 1 > 3 ? 2 : 0,
  }));
  const d: PushData = {
    agents: 2, requested: [0, 1], opens: [0, 500, 520, 1, 900, 1000], status: [0, 31_200, 1, 1, 1, 31_900, 1, 1], rssBeforeMB: [60, 40, 7],
    allOpenAtS: 1.1, openTimeoutS: 300, idle: [10, 30], openByPortIdle: { 9443: 2 }, requiredTimeoutS: 60,
    counters: { agents: 2, offered: 2, queued: 0, connecting: 0, open: 2, opened: 2, openByPort: { 9443: 2 }, failed: {}, dropped: {}, messages: { status: 4 }, statuses: { IDLE: 2, REQUIRED: 2 }, pings: 0, firstErrors: {} },
    calls: {
      path: '/api/endpoints/{id}/docker/_ping', calls: 2, connections: 1, connectMs: 5, firedAt: 31_000, writtenAt: 31_002,
      outcomes: {}, perCall, messages: {}, lastAnswerAt: 46_000,
    },
  };
  return { d, timeline };
}
const processes = [{ name: 'gateway-a', pid: 1, port: 9443 }, { name: 'core', pid: 2 }, { name: 'nats-server', pid: 3, infra: true }];

describe('push report', () => {
  it('gives memory per connection, idle CPU and the REQUIRED timings', () => {
    const { d, timeline } = data([TIMEOUT, NOT_ANSWERED]);
    const r = pushReport(d, timeline, processes, [101, 102]);
    expect(r.pass).toBe(true);
    expect(r.open).toMatchObject({ agentsOpened: 2, allOpenedS: 1, reopened: 0 });
    expect(r.open.handshakeMs).toMatchObject({ count: 2, p50: 20, max: 100 });
    // 2 MB more over 2 connections, over the last 10 s of the idle phase; infrastructure not summed.
    expect(r.memory).toMatchObject({ windowS: [21, 30], connections: 2, serverRssBeforeMB: 100, serverRssMB: 102, kbPerConnection: 1024 });
    expect(r.memory.processes).toEqual([
      { name: 'gateway-a', connections: 2, beforeMB: 60, withMB: 61, kbPerConnection: 512 },
      { name: 'core', connections: 2, beforeMB: 40, withMB: 41, kbPerConnection: 512 },
    ]);
    expect(r.idleCpu).toMatchObject({ windowS: [11, 30], serverCores: { avg: 0.05, max: 0.05 }, testerCores: 0.01 });
    expect(r.required).toMatchObject({
      requested: 2, callsFailed: 0, reached: 2, viaPush: 2, notReached: 0, fireMs: 2, allReachedS: 0.9, items: [[101, 200], [102, 900]],
    });
    expect(r.required!.receivedMs).toMatchObject({ min: 200, max: 900 });
  });

  it('leaves failed calls out of the timings, and fails the run when an agent never got REQUIRED', () => {
    const { d, timeline } = data([NO_LEADER, TIMEOUT]);
    // Agent 0's call failed, yet a first snapshot made it REQUIRED: counted apart.
    const r = pushReport(d, timeline, processes, [101, 102]);
    expect(r.required).toMatchObject({ callsFailed: 1, reached: 1, reachedOtherwise: 1, notReached: 0, allReachedS: null, items: [[101, -3], [102, 900]] });
    expect(r.pass).toBe(false);
    const never = data([TIMEOUT, TIMEOUT]);
    never.d.status = [0, 31_200, 1, 1];
    expect(pushReport(never.d, never.timeline, processes, [101, 102]).required).toMatchObject({ reached: 1, notReached: 1, allReachedS: null, items: [[101, 200], [102, -1]] });
  });

  it('judges a push run on its channels and REQUIRED, and prints its section', () => {
    const { d, timeline } = data([TIMEOUT, TIMEOUT]);
    const b = new SampleBuilder();
    b.add({ t: 100, latency: 5, code: 200, flags: 1, agent: 0, httpOut: 340, httpIn: 300, wireOut: 2000, wireIn: 1800 });
    b.add({ t: 400, latency: 5, code: 200, flags: 1, agent: 1, httpOut: 340, httpIn: 300, wireOut: 2000, wireIn: 1800 });
    const run: RunData = {
      startedAt: '', runStartEpochMs: 0, config: { agents: 2, intervalS: 5, durationS: 20, mode: 'push', workers: 1, rampS: 5 }, target: 'https://x',
      server: { embedded: true, pids: [1, 2], processes, note: '' }, setup: {}, agents: 2, intervalS: 5, durationS: 40, rampS: 5, slowMs: 1000,
      samples: b.take().batch, endpointIds: [101, 102],
      timeline: timeline.map((p) => ({ ...p, checkins: 0, errors: 0, p99: NaN, testerConnections: 2, serverConnections: 2, testerLoopBusy: 0, testerLoopDelayMs: 1, cpuPressure: 0, listenOverflows: 0 })),
      counters: { handshakes: 2, resumed: 0, idleCloses: 0, lateTicks: 0, messages: {} }, push: d,
    };
    const r = buildReport(run);
    expect(r.steady).toMatchObject({ fromS: 10, toS: 30, attempted: 0 });
    expect(r.targets.map((t) => [t.name, t.value, t.pass])).toEqual([['push channels opened', 2, true], ['REQUIRED received', 2, true]]);
    expect(r.pass).toBe(true);
    const table = renderTable(r);
    expect(table).toContain('server RSS per connection     1024.0 KB');
    expect(table).toContain('first 200 ms, p50 200 ms, p99 900 ms, last 900 ms: every agent had it 0.90 s after the first call');
  });
});
