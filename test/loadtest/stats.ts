/**
 * Check-in samples and the statistics over them. Every check-in is kept (about 30 bytes each,
 * 11 MB for a 15,000-agent, 2-minute run), so percentiles are exact, not estimated.
 */

/** Failures that never produced an HTTP response. */
export const ERROR_KINDS = ['timeout', 'connection reset', 'connection refused', 'connection closed', 'tls', 'fd limit', 'protocol', 'other'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** Outcome codes: an HTTP status (100-599), or 1000 + the index of an error kind. */
export const errorCode = (kind: ErrorKind): number => 1000 + ERROR_KINDS.indexOf(kind);

/** `200`, `304`, `HTTP 403`, `timeout`, ... */
export function outcomeLabel(code: number): string {
  if (code >= 1000) return ERROR_KINDS[code - 1000] ?? `error ${code}`;
  return code === 200 || code === 304 ? String(code) : `HTTP ${code}`;
}

/** Answered: the server said something useful (2xx, or 304 Not Modified). */
export const isAnswered = (code: number): boolean => (code >= 200 && code < 300) || code === 304;

/** Sample flags. */
export const FLAG_NEW_CONNECTION = 1;
/** The agent's reused connection had been closed by the server; the check-in was sent again on a new one. */
export const FLAG_RETRIED = 2;

/** Columns of check-in samples, as a worker hands them over (transferable typed arrays). */
export interface SampleBatch {
  /** Start, ms since the run started. */
  t: Float64Array;
  /** From request start (connect included when a new connection was needed) to the full response or the error, ms. */
  latency: Float32Array;
  code: Uint16Array;
  flags: Uint8Array;
  agent: Uint32Array;
  /** HTTP bytes: the request as written, the response as read (decrypted). */
  httpOut: Uint32Array;
  httpIn: Uint32Array;
  /** TCP payload bytes (TLS records) in each direction during the check-in, handshake included when there was one. */
  wireOut: Uint32Array;
  wireIn: Uint32Array;
}

const COLUMNS = { t: Float64Array, latency: Float32Array, code: Uint16Array, flags: Uint8Array, agent: Uint32Array, httpOut: Uint32Array, httpIn: Uint32Array, wireOut: Uint32Array, wireIn: Uint32Array } as const;
type Column = keyof typeof COLUMNS;
const COLUMN_NAMES = Object.keys(COLUMNS) as Column[];

/** One check-in, as a worker records it. */
export type Sample = { [K in Column]: number };

/** Collects samples in a worker and hands them over as typed arrays. */
export class SampleBuilder {
  private cols = emptyCols();

  get size(): number {
    return this.cols.t.length;
  }

  add(s: Sample): void {
    for (const c of COLUMN_NAMES) this.cols[c].push(s[c]);
  }

  /** The samples so far as a batch (and its buffers, to transfer), then starts afresh. */
  take(): { batch: SampleBatch; transfer: ArrayBuffer[] } {
    const batch = {} as SampleBatch;
    for (const c of COLUMN_NAMES) (batch as any)[c] = COLUMNS[c].from(this.cols[c]);
    this.cols = emptyCols();
    return { batch, transfer: COLUMN_NAMES.map((c) => batch[c].buffer as ArrayBuffer) };
  }
}

function emptyCols(): Record<Column, number[]> {
  return Object.fromEntries(COLUMN_NAMES.map((c) => [c, []])) as unknown as Record<Column, number[]>;
}

/** Concatenates batches into one. */
export function concatBatches(batches: readonly SampleBatch[]): SampleBatch {
  const n = batches.reduce((a, b) => a + b.t.length, 0);
  const out = {} as SampleBatch;
  for (const c of COLUMN_NAMES) {
    const col = new COLUMNS[c](n);
    let off = 0;
    for (const b of batches) {
      col.set(b[c] as any, off);
      off += b[c].length;
    }
    (out as any)[c] = col;
  }
  return out;
}

/** Nearest-rank percentile of ascending `sorted` (p in 0-100); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!sorted.length) return NaN;
  // Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
  const rank = Math.ceil(Number(((p / 100) * sorted.length).toFixed(6)));
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Latency distribution of a set of check-ins, ms. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

export function latencySummary(values: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  return {
    count: sorted.length,
    mean: sorted.length ? sum / sorted.length : NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

/** Mean bytes per check-in, both layers. */
export interface BytesSummary {
  httpIn: number;
  httpOut: number;
  wireIn: number;
  wireOut: number;
}

/** What happened to the check-ins that started in a window. */
export interface CheckinSummary {
  /** Check-ins started in the window (each one ended: answered, HTTP error or failure). */
  attempted: number;
  answered: number;
  /** answered / attempted, percent. */
  answeredPct: number;
  /** Count per outcome label: 200, 304, HTTP 403, timeout, ... */
  outcomes: Record<string, number>;
  /** Count per failure label (everything not answered). */
  errors: Record<string, number>;
  /** Latency of every attempt, failures included (a timeout counts as the time it took to give up). */
  latencyMs: LatencySummary;
  /** Mean bytes per check-in, over all attempts. */
  bytes: BytesSummary;
  /** Mean bytes per check-in by outcome (200 and 304 are the steady-state shapes). */
  bytesByOutcome: Record<string, BytesSummary>;
  /** Check-ins that had to open a connection (TLS handshake in their latency). */
  newConnections: number;
  /** Check-ins sent a second time after the server had closed the idle connection. */
  retried: number;
}

/** Indexes of the samples that started in [fromMs, toMs). */
export function indexesInWindow(s: SampleBatch, fromMs: number, toMs: number): Uint32Array {
  const idx: number[] = [];
  for (let i = 0; i < s.t.length; i++) if (s.t[i] >= fromMs && s.t[i] < toMs) idx.push(i);
  return Uint32Array.from(idx);
}

export function summarize(s: SampleBatch, idx: ArrayLike<number>): CheckinSummary {
  const outcomes: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const byOutcome = new Map<string, { n: number; b: BytesSummary }>();
  const total: BytesSummary = { httpIn: 0, httpOut: 0, wireIn: 0, wireOut: 0 };
  const lat = new Float64Array(idx.length);
  let answered = 0;
  let newConnections = 0;
  let retried = 0;
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k];
    const code = s.code[i];
    const label = outcomeLabel(code);
    outcomes[label] = (outcomes[label] ?? 0) + 1;
    if (isAnswered(code)) answered++;
    else errors[label] = (errors[label] ?? 0) + 1;
    lat[k] = s.latency[i];
    if (s.flags[i] & FLAG_NEW_CONNECTION) newConnections++;
    if (s.flags[i] & FLAG_RETRIED) retried++;
    let o = byOutcome.get(label);
    if (!o) byOutcome.set(label, (o = { n: 0, b: { httpIn: 0, httpOut: 0, wireIn: 0, wireOut: 0 } }));
    o.n++;
    for (const b of [o.b, total]) {
      b.httpIn += s.httpIn[i];
      b.httpOut += s.httpOut[i];
      b.wireIn += s.wireIn[i];
      b.wireOut += s.wireOut[i];
    }
  }
  const mean = (b: BytesSummary, n: number): BytesSummary => ({
    httpIn: n ? b.httpIn / n : NaN, httpOut: n ? b.httpOut / n : NaN, wireIn: n ? b.wireIn / n : NaN, wireOut: n ? b.wireOut / n : NaN,
  });
  return {
    attempted: idx.length,
    answered,
    answeredPct: idx.length ? (100 * answered) / idx.length : NaN,
    outcomes,
    errors,
    latencyMs: latencySummary(lat),
    bytes: mean(total, idx.length),
    bytesByOutcome: Object.fromEntries([...byOutcome].map(([k, v]) => [k, mean(v.b, v.n)])),
    newConnections,
    retried,
  };
}

/**
 * When the ramp was over: the time (ms since the start) by which every agent's first check-in had
 * ended (answered or not), and by which every agent had had a check-in answered (the fleet was
 * up: a first check-in that timed out is retried, on a new connection); how many agents never
 * ended one, and never had one answered.
 */
export function firstCheckinsEnd(s: SampleBatch, agents: number): { endMs: number; agentsWithout: number; answeredEndMs: number; agentsUnanswered: number } {
  const first = new Float64Array(agents).fill(Infinity);
  const end = new Float64Array(agents);
  const firstOk = new Float64Array(agents).fill(Infinity);
  const endOk = new Float64Array(agents);
  for (let i = 0; i < s.t.length; i++) {
    const a = s.agent[i];
    if (a >= agents) continue;
    if (s.t[i] < first[a]) {
      first[a] = s.t[i];
      end[a] = s.t[i] + s.latency[i];
    }
    if (isAnswered(s.code[i]) && s.t[i] < firstOk[a]) {
      firstOk[a] = s.t[i];
      endOk[a] = s.t[i] + s.latency[i];
    }
  }
  let endMs = 0;
  let agentsWithout = 0;
  let answeredEndMs = 0;
  let agentsUnanswered = 0;
  for (let a = 0; a < agents; a++) {
    if (first[a] === Infinity) agentsWithout++;
    else endMs = Math.max(endMs, end[a]);
    if (firstOk[a] === Infinity) agentsUnanswered++;
    else answeredEndMs = Math.max(answeredEndMs, endOk[a]);
  }
  return { endMs, agentsWithout, answeredEndMs, agentsUnanswered };
}

/** Mean and max of a series, ignoring NaN. */
export function avgMax(values: readonly number[]): { avg: number; max: number } {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return { avg: NaN, max: NaN };
  return { avg: v.reduce((a, b) => a + b, 0) / v.length, max: Math.max(...v) };
}

/** Mean of `f` over the points with t in [from, to], ignoring NaN; NaN without points. */
export function meanOver<P extends { t: number }>(points: readonly P[], from: number, to: number, f: (p: P) => number | undefined): number {
  return avgMax(points.filter((p) => p.t >= from && p.t <= to).map((p) => f(p) ?? NaN)).avg;
}

/** `meanOver` a window [from, to]; NaN without one. */
export function meanIn<P extends { t: number }>(points: readonly P[], w: readonly [number, number] | null, f: (p: P) => number | undefined): number {
  return w ? meanOver(points, w[0], w[1], f) : NaN;
}
