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

  it('finds when every agent had ended its first check-in', () => {
    const batch = run(20, 4, (i) => ({ latency: i === 2 ? 5000 : 1, code: 200 }));
    expect(firstCheckinsEnd(batch, 4)).toEqual({ endMs: 5020, agentsWithout: 0 });
    expect(firstCheckinsEnd(batch, 5).agentsWithout).toBe(1);
  });
});

describe('report', () => {
  const base = (samples: RunData['samples'], serverCpu: number): RunData => ({
    startedAt: '', runStartEpochMs: 0, config: { agents: 10, intervalS: 1, durationS: 10, mode: 'poll', workers: 1 }, target: 'https://x', server: { embedded: true, pids: [1], note: '' },
    setup: {}, agents: 10, intervalS: 1, durationS: 10, rampS: 1, slowMs: 1000, samples, endpointIds: Array.from({ length: 10 }, (_, i) => i + 1),
    timeline: Array.from({ length: 10 }, (_, i) => ({ t: i + 1, checkins: 10, errors: 0, p99: 1, serverCpu, serverRssMB: 100, testerCpu: 0.1, testerRssMB: 50, testerConnections: 10, serverConnections: 10, testerLoopBusy: 0.3, testerLoopDelayMs: 11, machineCpu: 1, otherCpu: 0.4, cpuPressure: 5, listenOverflows: 0 })),
    counters: { handshakes: 10, resumed: 0, idleCloses: 0, lateTicks: 0, messages: {} },
  });

  it('judges the targets on the steady state, after an automatic warm-up', () => {
    // The first check-ins are slow (handshake storm), the rest fast.
    const samples = run(1000, 10, (i) => ({ latency: i < 20 ? 3000 - i * 10 : 1, code: i < 20 ? 200 : 304 }));
    const r = buildReport(base(samples, 0.5));
    expect(r.warmup).toMatchObject({ how: 'auto', seconds: 3 });
    expect(r.total.latencyMs.p99).toBeGreaterThan(50);
    expect(r.steady.latencyMs.p99).toBe(1);
    expect(r.pass).toBe(true);
    expect(r.settledAtS).toBe(0);
    expect(r.slow.count).toBe(20);
    expect(r.slowest).toMatchObject({ count: 1, fromMs: 3000 });
    expect(buildReport(base(samples, 1.5)).targets.map((t) => t.pass)).toEqual([true, true, false]);
  });
});
