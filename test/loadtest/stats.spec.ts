import { buildReport, type RunData } from './report';
import { concatBatches, errorCode, firstCheckinsEnd, indexesInWindow, latencySummary, percentile, SampleBuilder, summarize, FLAG_NEW_CONNECTION } from './stats';

describe('percentiles', () => {
  it('uses the nearest rank', () => {
    const sorted = Array.from({ length: 1000 }, (_, i) => i + 1); // 1..1000
    expect(percentile(sorted, 50)).toBe(500);
    expect(percentile(sorted, 99)).toBe(990);
    expect(percentile(sorted, 99.9)).toBe(999);
    expect(percentile(sorted, 100)).toBe(1000);
    expect(percentile([7], 99.9)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('summarises unsorted latencies', () => {
    const s = latencySummary([5, 1, 4, 2, 3]);
    expect(s).toEqual({ count: 5, mean: 3, p50: 3, p95: 5, p99: 5, p999: 5, max: 5 });
  });
});

/** Samples of `n` check-ins of agent `i % agents`, one every 10 ms. */
function run(n: number, agents: number, each: (i: number) => { latency: number; code: number; httpIn?: number; flags?: number }) {
  const b = new SampleBuilder();
  for (let i = 0; i < n; i++) {
    const e = each(i);
    b.add({ t: i * 10, latency: e.latency, code: e.code, flags: e.flags ?? 0, agent: i % agents, httpOut: 340, httpIn: e.httpIn ?? 163, wireOut: 362, wireIn: 185 });
  }
  return b.take().batch;
}

describe('check-in summaries', () => {
  it('counts answered check-ins, errors by kind, and mean bytes overall and per outcome', () => {
    const batch = run(1000, 10, (i) => (i === 3 ? { latency: 10_000, code: errorCode('timeout'), httpIn: 0 }
      : i === 4 ? { latency: 2, code: 503, httpIn: 200 }
        : i % 10 === 0 ? { latency: 3, code: 200, httpIn: 350, flags: FLAG_NEW_CONNECTION } : { latency: 1, code: 304 }));
    const s = summarize(batch, indexesInWindow(batch, 0, Infinity));
    expect(s.attempted).toBe(1000);
    expect(s.answered).toBe(998);
    expect(s.answeredPct).toBeCloseTo(99.8);
    expect(s.errors).toEqual({ timeout: 1, 'HTTP 503': 1 });
    expect(s.outcomes).toEqual({ 200: 100, 304: 898, timeout: 1, 'HTTP 503': 1 });
    expect(s.newConnections).toBe(100);
    // A timeout counts in the latency as the time it took to give up.
    expect(s.latencyMs.max).toBe(10_000);
    expect(s.bytesByOutcome['304']).toEqual({ httpIn: 163, httpOut: 340, wireIn: 185, wireOut: 362 });
    expect(s.bytesByOutcome['200'].httpIn).toBe(350);
    expect(s.bytes.httpIn).toBeCloseTo((100 * 350 + 898 * 163 + 0 + 200) / 1000);
  });

  it('windows by start time, and batches concatenate in order', () => {
    const a = run(100, 5, () => ({ latency: 1, code: 304 }));
    const b = run(100, 5, () => ({ latency: 2, code: 304 }));
    b.t = b.t.map((t) => t + 1000);
    const all = concatBatches([a, b]);
    expect(all.t.length).toBe(200);
    expect(indexesInWindow(all, 1000, 2000).length).toBe(100);
    expect(summarize(all, indexesInWindow(all, 1000, 2000)).latencyMs.p50).toBe(2);
  });

  it('finds when every agent had ended its first check-in, and had one answered', () => {
    const batch = run(20, 4, (i) => ({ latency: i === 2 ? 5000 : 1, code: 200 }));
    expect(firstCheckinsEnd(batch, 4)).toEqual({ endMs: 5020, agentsWithout: 0, answeredEndMs: 5020, agentsUnanswered: 0 });
    expect(firstCheckinsEnd(batch, 5)).toMatchObject({ agentsWithout: 1, agentsUnanswered: 1 });
    // Agent 1's first check-in times out; its retry (at 50 ms) is answered.
    const retried = run(20, 4, (i) => (i === 1 ? { latency: 10_000, code: errorCode('timeout') } : { latency: 1, code: 200 }));
    expect(firstCheckinsEnd(retried, 4)).toEqual({ endMs: 10_010, agentsWithout: 0, answeredEndMs: 51, agentsUnanswered: 0 });
    const never = run(20, 4, (i) => (i % 4 === 1 ? { latency: 1, code: errorCode('timeout') } : { latency: 1, code: 304 }));
    expect(firstCheckinsEnd(never, 4)).toMatchObject({ agentsWithout: 0, agentsUnanswered: 1 });
  });
});

describe('report', () => {
  const base = (samples: RunData['samples'], serverCpu: number): RunData => ({
    startedAt: '', runStartEpochMs: 0, config: { agents: 10, intervalS: 1, durationS: 10, mode: 'poll', workers: 1 }, target: 'https://x', server: { embedded: true, pids: [1], processes: [{ name: 'embedded', pid: 1 }], note: '' },
    setup: {}, agents: 10, intervalS: 1, durationS: 10, rampS: 1, slowMs: 1000, samples, endpointIds: Array.from({ length: 10 }, (_, i) => i + 1),
    timeline: Array.from({ length: 10 }, (_, i) => ({ t: i + 1, checkins: 10, errors: 0, p99: 1, serverCpu, serverRssMB: 100, testerCpu: 0.1, testerRssMB: 50, testerConnections: 10, serverConnections: 10, testerLoopBusy: 0.3, testerLoopDelayMs: 11, machineCpu: 1, otherCpu: 0.4, cpuPressure: 5, listenOverflows: 0 })),
    counters: { handshakes: 10, resumed: 0, idleCloses: 0, lateTicks: 0, messages: {} },
  });

  it('judges the targets on the steady state, after an automatic warm-up', () => {
    // The first check-ins are slow (handshake storm), the rest fast.
    const samples = run(1000, 10, (i) => ({ latency: i < 20 ? 3000 - i * 10 : 1, code: i < 20 ? 200 : 304 }));
    const r = buildReport(base(samples, 0.5));
    // Every agent had a check-in answered after about 3 s, plus one 1 s interval.
    expect(r.warmup).toMatchObject({ how: 'auto', seconds: 4, fleetUpS: 3 });
    expect(r.total.latencyMs.p99).toBeGreaterThan(50);
    expect(r.steady.latencyMs.p99).toBe(1);
    expect(r.pass).toBe(true);
    expect(r.settledAtS).toBe(0);
    expect(r.slow.count).toBe(20);
    expect(r.slowest).toMatchObject({ count: 1, fromMs: 3000 });
    expect(buildReport(base(samples, 1.5)).targets.map((t) => t.pass)).toEqual([true, true, false]);
  });

  it('reports a tunnel storm: calls, tunnels, memory per tunnel, CPU above the baseline', () => {
    const samples = run(1000, 10, () => ({ latency: 1, code: 304 }));
    const d = base(samples, 0.5);
    // 30 s: the storm fires at 10 s, 2 tunnels open at 12 s, RSS grows by 2 MB.
    d.durationS = 30;
    d.timeline = Array.from({ length: 30 }, (_, i) => ({
      ...d.timeline[0], t: i + 1, serverRssMB: i + 1 > 12 ? 102 : 100, testerRssMB: i + 1 > 12 ? 51 : 50,
      serverCpu: i + 1 === 11 || i + 1 === 12 ? 1.5 : 0.5, tunnelsOpen: i + 1 > 12 ? 2 : 0, tunnelsOpening: 0,
    }));
    d.storm = {
      agents: 2, atS: 10, tunnels: { agents: 2, armed: true, opening: 0, open: 2, opened: 2, failed: {}, dropped: 0, closedIdle: 0, served: { '/_ping': 2 } },
      calls: {
        path: '/_ping', timeoutMs: 60_000, firedAt: 10_000, connectMs: 500, messages: {},
        calls: [{ endpointId: 1, gateway: 0, start: 10_000, end: 11_000, outcome: '200' }, { endpointId: 2, gateway: 0, start: 10_000, end: 12_000, outcome: '200' }],
      },
      events: [{ agent: 1, requiredAt: 10_900, openAt: 10_950 }, { agent: 2, requiredAt: 11_800, openAt: 11_900 }],
    };
    const st = buildReport(d).storm!;
    expect(st.pass).toBe(true);
    expect(st.calls).toMatchObject({ count: 2, answered200: 2, allAnsweredS: 2, outcomes: { 200: 2 } });
    expect(st.tunnels).toMatchObject({ agentsOpened: 2, allOpenS: 1.9 });
    expect(st.tunnels.setupMs.max).toBe(100);
    expect(st.memory).toMatchObject({ afterS: [17, 20], serverRssBeforeMB: 100, serverRssAfterMB: 102, serverKBPerTunnel: 1024, testerKBPerTunnel: 512 });
    expect(st.cpu).toMatchObject({ serverCoreSeconds: 2, serverMsPerTunnel: 1000 });
    d.storm.calls!.calls[1].outcome = 'HTTP 504';
    expect(buildReport(d).storm).toMatchObject({ pass: false, calls: { allAnsweredS: null } });
  });
});
