/** The end-of-run table, from a report. */
import { PORTAINER, TARGETS, type Report, type SlowCheckin, type StormReport, type WindowReport } from './report';
import type { LatencySummary } from './stats';

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const counts = (o: Record<string, number>) => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';

/** The end-of-run table. */
export function renderTable(r: Report): string {
  const c = r.config as { agents: number; intervalS: number; durationS: number; mode: string; workers: number; shape?: string; pollingInGateways?: boolean };
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
    ['  of which softirq avg / max', (w) => `${f(w.softirqCpuCores.avg, 2)} / ${f(w.softirqCpuCores.max, 2)}`],
    ['CPU pressure (PSI) avg / max %', (w) => `${f(w.cpuPressurePct.avg, 0)} / ${f(w.cpuPressurePct.max, 0)}`],
    ['accept queue overflows', (w) => String(w.listenOverflows)],
  ];
  const w1 = 33;
  const w2 = 30;
  const lines: string[] = [];
  lines.push('');
  const procs = r.steady.processes ?? [];
  procs.forEach((p, i) => {
    const label = `  ${p.infra ? `(${p.name}, not summed)` : p.name}`;
    const get = (w: WindowReport) => `${f(w.processes![i].cpuCores.avg, 2)} / ${f(w.processes![i].cpuCores.max, 2)} c, ${f(w.processes![i].rssMB.avg, 0)} MB`;
    rows.splice(rows.findIndex(([l]) => l.startsWith('server RSS')) + 1 + i, 0, [label.slice(0, 32), get]);
  });
  lines.push(`Capstan load test: --mode ${c.mode}${c.shape ? `, --shape ${c.shape}${c.pollingInGateways ? ' --polling-in-gateways' : ''}` : ''}, ${c.agents} agents, interval ${c.intervalS} s, duration ${c.durationS} s, ${c.workers} worker thread(s)`);
  lines.push(`target ${r.target} (${!r.server.embedded ? 'running server' : r.server.shape === 'distributed' ? 'distributed shape started by the tester' : 'embedded server started by the tester'}; ${r.server.note})`);
  lines.push('');
  lines.push(`${''.padEnd(w1)}${`steady ${r.steady.fromS}-${r.steady.toS} s`.padEnd(w2)}total ${r.total.fromS}-${r.total.toS} s`);
  // A long steady value keeps two spaces before the total's.
  for (const [label, get] of rows) lines.push(`${label.padEnd(w1)}${`${get(r.steady)}  `.padEnd(w2)}${get(r.total)}`);
  lines.push('');
  lines.push(`Portainer's figure: ~${PORTAINER.bytesPerCheckin} B per check-in (7 Mbps / 15,000 agents at 5 s); ours (steady, HTTP in+out): ${f(r.steady.bytes.httpIn + r.steady.bytes.httpOut, 0)} B, TLS in+out: ${f(r.steady.bytes.wireIn + r.steady.bytes.wireOut, 0)} B`);
  lines.push(`connections: ${r.connections.handshakes} TLS handshakes (${r.connections.resumed} resumed), ${r.connections.idleCloses} lost between check-ins, ${r.connections.lateTicks} late ticks (agent still busy at its next tick)`);
  for (const [kind, msg] of Object.entries(r.connections.messages)) lines.push(`  first ${kind}: ${msg}`);
  if (r.serverLog) {
    lines.push(`server log: ${r.serverLog.lines} lines, ${r.serverLog.warnOrWorse} warn/error`
      + (r.serverLog.expected ? ` (${r.serverLog.expected} of them "first snapshot failed": simulated agents open no tunnel for it)` : ''));
  }
  lines.push('');
  lines.push(`ramp: every agent's first check-in had ended ${r.warmup.firstCheckinsEndedS} s after the start${r.warmup.agentsWithoutCheckin ? ` (${r.warmup.agentsWithoutCheckin} agents never ended one)` : ''}, `
    + `every agent had had one answered (the fleet was up) ${r.warmup.agentsNeverAnswered ? `never (${r.warmup.agentsNeverAnswered} agents never had one)` : `${r.warmup.fleetUpS} s after the start`}; `
    + (r.settledAtS === null ? 'the run never settled (its last second missed the p99 target or had errors)' : `settled from ${r.settledAtS} s on (every later second: p99 <= ${TARGETS.p99Ms} ms, no errors)`));
  lines.push(`targets, on the steady state: ${r.steadyDefinition}`);
  for (const t of r.targets) lines.push(`  ${t.name.padEnd(24)}${t.target.padEnd(14)}${f(t.value, t.name.startsWith('answered') ? 3 : 2).padEnd(12)}${t.pass ? 'PASS' : 'FAIL'}`);
  lines.push(`result: ${r.pass ? 'PASS' : 'FAIL'}`);
  for (const w of r.warnings) lines.push(`WARNING: ${w}`);
  lines.push('');
  if (r.storm) lines.push(...stormLines(r.storm), '');
  const steadySlow = r.slow.items.filter((s) => s.t >= r.warmup.seconds);
  const shown = (steadySlow.length ? steadySlow : r.slow.items).slice(0, 10);
  lines.push(`check-ins slower than ${r.slow.thresholdMs} ms: ${r.slow.count}, ${r.slow.steadyCount} of them in the steady state${shown.length ? ` (first ${shown.length}${steadySlow.length ? ' of the steady state' : ', all in the warm-up'})` : ''}`);
  for (const s of shown) lines.push(`  ${slowLine(s)}`);
  lines.push(`slowest 0.1 %: ${r.slowest.count} check-ins of ${f(r.slowest.fromMs)} ms or more${r.slowest.count > 10 ? ' (10 slowest)' : ''}`);
  for (const s of r.slowest.items.slice(0, 10)) lines.push(`  ${slowLine(s)}`);
  return lines.join('\n');
}

const lat = (l: LatencySummary) => `p50 ${f(l.p50 / 1000, 2)} s, p99 ${f(l.p99 / 1000, 2)} s, max ${f(l.max / 1000, 2)} s`;

function stormLines(s: StormReport): string[] {
  const out = [`tunnel storm: ${s.agents} environments made REQUIRED at once at ${s.firedAtS === null ? '- (never fired)' : `${f(s.firedAtS, 1)} s`} (GET /api/endpoints/{id}/docker${s.path}, ${s.agents} concurrent calls written at once on connections opened before, in ${f(s.connectMs / 1000, 1)} s)`];
  const c = s.calls;
  out.push(`  calls answered 200            ${c.answered200}/${c.count}${c.allAnsweredS === null ? ' (not all)' : `, all of them ${f(c.allAnsweredS, 2)} s after the firing`}; last call ended after ${f(c.lastEndedS, 2)} s`);
  out.push(`  per call (firing to answer)   ${lat(c.latencyMs)}`);
  const failures = Object.entries(c.outcomes).filter(([k]) => k !== '200');
  out.push(`  failures by kind              ${failures.length ? failures.map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'}`);
  for (const [k, m] of Object.entries(c.messages)) out.push(`    first ${k}: ${m.slice(0, 160)}`);
  const t = s.tunnels;
  out.push(`  tunnels opened                ${t.agentsOpened}/${s.agents} agents${t.allOpenS === null ? '' : `, all open ${f(t.allOpenS, 2)} s after the firing`}; ${t.dropped} dropped, ${t.openAtEnd} open at the end`);
  out.push(`  firing to REQUIRED seen       ${lat(t.requiredSeenMs)} (the agents' next check-in)`);
  out.push(`  REQUIRED seen to tunnel open  p50 ${f(t.setupMs.p50, 0)} ms, p99 ${f(t.setupMs.p99, 0)} ms, max ${f(t.setupMs.max, 0)} ms (WebSocket, SSH, login, config)`);
  const failed = Object.entries(t.failed);
  if (failed.length) out.push(`  tunnel opens failed           ${failed.map(([k, v]) => `${v}x ${k}`).join('; ')}`);
  const m = s.memory;
  out.push(`  server RSS                    ${f(m.serverRssBeforeMB, 0)} MB before, ${f(m.serverRssAfterMB, 0)} MB ${m.afterS ? `at ${m.afterS[0]}-${m.afterS[1]} s` : '(no sample 5 s after)'} with ${f(m.tunnelsOpenAfter, 0)} open: ${f(m.serverKBPerTunnel, 0)} KB per tunnel; at the end (${m.endS[0]}-${m.endS[1]} s, ${f(m.tunnelsOpenEnd, 0)} open) ${f(m.serverRssEndMB, 0)} MB: ${f(m.serverKBPerTunnelEnd, 0)} KB per tunnel`);
  for (const p of m.processes ?? []) out.push(`    ${p.name.padEnd(28)}${f(p.beforeMB, 0)} -> ${f(p.afterMB, 0)} MB (end ${f(p.endMB, 0)} MB): ${f(p.kbPerTunnel, 0)} KB per tunnel`);
  out.push(`  server CPU for the storm      ${f(s.cpu.serverCoreSeconds, 2)} core-s above the baseline (${s.cpu.windowS[0]}-${s.cpu.windowS[1]} s): ${f(s.cpu.serverMsPerTunnel, 1)} ms per tunnel`);
  out.push(`  tester's own cost             ${f(s.cpu.testerCoreSeconds, 2)} core-s (${f(s.cpu.testerMsPerTunnel, 1)} ms per tunnel), RSS ${f(m.testerRssBeforeMB, 0)} -> ${f(m.testerRssAfterMB, 0)} MB (${f(m.testerKBPerTunnel, 0)} KB per tunnel)`);
  const k = s.checkins;
  out.push(`  check-ins meanwhile           ${k.attempted} (${f(k.answeredPct, 3)} % answered), p50 ${f(k.latencyMs.p50, 1)} ms, p99 ${f(k.latencyMs.p99, 1)} ms, max ${f(k.latencyMs.max, 0)} ms`);
  out.push(`  result: ${s.pass ? 'every call answered 200' : 'FAIL: not every call answered 200'}`);
  return out;
}

function bytesOf(w: WindowReport, outcome: string): string {
  const b = w.bytesByOutcome[outcome];
  return b ? `${f(b.httpIn, 0)}+${f(b.httpOut, 0)} B` : '-';
}

function slowLine(s: SlowCheckin): string {
  const cause = s.cause ? `  cause? ${s.cause.level} at ${s.cause.t} s: ${s.cause.msg.slice(0, 120)}` : '';
  return `t=${s.t.toFixed(3)} s  agent ${s.agent} (environment ${s.endpointId})  ${s.latencyMs.toFixed(1)} ms  ${s.outcome}${cause}`;
}
