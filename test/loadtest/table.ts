/** The end-of-run table, from a report. */
import { PORTAINER, TARGETS, type Report, type SlowCheckin, type WindowReport } from './report';

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const counts = (o: Record<string, number>) => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';

/** The end-of-run table. */
export function renderTable(r: Report): string {
  const c = r.config as { agents: number; intervalS: number; durationS: number; mode: string; workers: number };
  const rows: Array<[string, (w: WindowReport) => string]> = [
    ['check-ins (started in window)', (w) => String(w.attempted)],
    ['achieved / expected per s', (w) => `${f(w.achievedPerS)} / ${f(w.expectedPerS)}`],
    ['answered (2xx/304)', (w) => `${f(w.answeredPct, 3)} %`],
    ['latency p50 / p95 / p99 ms', (w) => `${f(w.latencyMs.p50, 2)} / ${f(w.latencyMs.p95, 2)} / ${f(w.latencyMs.p99, 2)}`],
    ['latency p99.9 / max ms', (w) => `${f(w.latencyMs.p999, 2)} / ${f(w.latencyMs.max, 1)}`],
    ['outcomes', (w) => counts(w.outcomes)],
    ['errors by kind', (w) => counts(w.errors)],
    ['HTTP bytes / check-in in / out', (w) => `${f(w.bytes.httpIn)} / ${f(w.bytes.httpOut)}`],
    ['  of a 304 / of a 200', (w) => `${bytesOf(w, '304')} / ${bytesOf(w, '200')}`],
    ['TLS bytes / check-in in / out', (w) => `${f(w.bytes.wireIn)} / ${f(w.bytes.wireOut)}`],
    ['traffic Mbit/s HTTP / TLS', (w) => `${f(w.trafficMbps.http, 2)} / ${f(w.trafficMbps.wire, 2)}`],
    ['new connections (handshakes)', (w) => `${w.newConnections} (${w.retried} resent)`],
    ['server CPU avg / max cores', (w) => `${f(w.serverCpuCores.avg, 2)} / ${f(w.serverCpuCores.max, 2)}`],
    ['server RSS avg / max MB', (w) => `${f(w.serverRssMB.avg, 0)} / ${f(w.serverRssMB.max, 0)}`],
    ['server-port connections avg/max', (w) => `${f(w.serverConnections.avg, 0)} / ${f(w.serverConnections.max, 0)}`],
    ['tester connections avg / max', (w) => `${f(w.testerConnections.avg, 0)} / ${f(w.testerConnections.max, 0)}`],
    ['tester CPU avg / max cores', (w) => `${f(w.testerCpuCores.avg, 2)} / ${f(w.testerCpuCores.max, 2)}`],
    ['tester loop busy avg / max %', (w) => `${f(w.testerLoopBusy.avg * 100, 0)} / ${f(w.testerLoopBusy.max * 100, 0)}`],
    ['tester loop delay p99 avg/max ms', (w) => `${f(w.testerLoopDelayMs.avg)} / ${f(w.testerLoopDelayMs.max)}`],
    ['machine CPU avg / max cores', (w) => `${f(w.machineCpuCores.avg, 2)} / ${f(w.machineCpuCores.max, 2)}`],
    ['  of which others avg / max', (w) => `${f(w.otherCpuCores.avg, 2)} / ${f(w.otherCpuCores.max, 2)}`],
    ['CPU pressure (PSI) avg / max %', (w) => `${f(w.cpuPressurePct.avg, 0)} / ${f(w.cpuPressurePct.max, 0)}`],
    ['accept queue overflows', (w) => String(w.listenOverflows)],
  ];
  const w1 = 33;
  const w2 = 30;
  const lines: string[] = [];
  lines.push('');
  lines.push(`Capstan load test: --mode ${c.mode}, ${c.agents} agents, interval ${c.intervalS} s, duration ${c.durationS} s, ${c.workers} worker thread(s)`);
  lines.push(`target ${r.target} (${r.server.embedded ? 'embedded server started by the tester' : 'running server'}; ${r.server.note})`);
  lines.push('');
  lines.push(`${''.padEnd(w1)}${`steady ${r.steady.fromS}-${r.steady.toS} s`.padEnd(w2)}total ${r.total.fromS}-${r.total.toS} s`);
  // A long steady value keeps two spaces before the total's.
  for (const [label, get] of rows) lines.push(`${label.padEnd(w1)}${`${get(r.steady)}  `.padEnd(w2)}${get(r.total)}`);
  lines.push('');
  lines.push(`Portainer's figure: ~${PORTAINER.bytesPerCheckin} B per check-in (7 Mbps / 15,000 agents at 5 s); ours (steady, HTTP in+out): ${f(r.steady.bytes.httpIn + r.steady.bytes.httpOut, 0)} B, TLS in+out: ${f(r.steady.bytes.wireIn + r.steady.bytes.wireOut, 0)} B`);
  lines.push(`connections: ${r.connections.handshakes} TLS handshakes (${r.connections.resumed} resumed), ${r.connections.idleCloses} lost between check-ins, ${r.connections.lateTicks} late ticks (agent still busy at its next tick)`);
  for (const [kind, msg] of Object.entries(r.connections.messages)) lines.push(`  first ${kind}: ${msg}`);
  if (r.serverLog) lines.push(`server log: ${r.serverLog.lines} lines, ${r.serverLog.warnOrWorse} warn/error`);
  lines.push('');
  lines.push(`ramp: every agent's first check-in had ended ${r.warmup.firstCheckinsEndedS} s after the start${r.warmup.agentsWithoutCheckin ? ` (${r.warmup.agentsWithoutCheckin} agents never ended one)` : ''}; `
    + (r.settledAtS === null ? 'the run never settled (its last second missed the p99 target or had errors)' : `settled from ${r.settledAtS} s on (every later second: p99 <= ${TARGETS.p99Ms} ms, no errors)`));
  lines.push(`targets, on the steady state: ${r.steadyDefinition}`);
  for (const t of r.targets) lines.push(`  ${t.name.padEnd(24)}${t.target.padEnd(14)}${f(t.value, t.name.startsWith('answered') ? 3 : 2).padEnd(12)}${t.pass ? 'PASS' : 'FAIL'}`);
  lines.push(`result: ${r.pass ? 'PASS' : 'FAIL'}`);
  for (const w of r.warnings) lines.push(`WARNING: ${w}`);
  lines.push('');
  const steadySlow = r.slow.items.filter((s) => s.t >= r.warmup.seconds);
  const shown = (steadySlow.length ? steadySlow : r.slow.items).slice(0, 10);
  lines.push(`check-ins slower than ${r.slow.thresholdMs} ms: ${r.slow.count}, ${r.slow.steadyCount} of them in the steady state${shown.length ? ` (first ${shown.length}${steadySlow.length ? ' of the steady state' : ', all in the warm-up'})` : ''}`);
  for (const s of shown) lines.push(`  ${slowLine(s)}`);
  lines.push(`slowest 0.1 %: ${r.slowest.count} check-ins of ${f(r.slowest.fromMs)} ms or more${r.slowest.count > 10 ? ' (10 slowest)' : ''}`);
  for (const s of r.slowest.items.slice(0, 10)) lines.push(`  ${slowLine(s)}`);
  return lines.join('\n');
}

function bytesOf(w: WindowReport, outcome: string): string {
  const b = w.bytesByOutcome[outcome];
  return b ? `${f(b.httpIn, 0)}+${f(b.httpOut, 0)} B` : '-';
}

function slowLine(s: SlowCheckin): string {
  const cause = s.cause ? `  cause? ${s.cause.level} at ${s.cause.t} s: ${s.cause.msg.slice(0, 120)}` : '';
  return `t=${s.t.toFixed(3)} s  agent ${s.agent} (environment ${s.endpointId})  ${s.latencyMs.toFixed(1)} ms  ${s.outcome}${cause}`;
}
