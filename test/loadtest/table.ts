/** The end-of-run table, from a report. */
import type { PushReport } from './pushreport';
import { PORTAINER, TARGETS, type Report, type SlowCheckin, type StormReport, type WindowReport } from './report';
import type { LatencySummary } from './stats';

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const counts = (o: Record<string, number>) => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';

/** The end-of-run table. */
export function renderTable(r: Report): string {
  const c = r.config as { agents: number; intervalS: number; durationS: number; mode: string; workers: number; workerKind?: string; rampS?: number; shape?: string; pollingInGateways?: boolean; gateways?: number };
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
  const shape = c.shape ? `, --shape ${c.shape}${c.shape === 'distributed' ? ` --gateways ${c.gateways ?? 2}` : ''}${c.pollingInGateways ? ' --polling-in-gateways' : ''}` : '';
  lines.push(`Capstan load test: --mode ${c.mode}${shape}, ${c.agents} agents, interval ${c.intervalS} s, ${r.push ? 'idle phase' : 'duration'} ${c.durationS} s, ${c.workers} worker ${c.workerKind === 'process' ? 'process' : 'thread'}(s)`);
  lines.push(`target ${r.target} (${!r.server.embedded ? 'running server' : r.server.shape === 'distributed' ? 'distributed shape started by the tester' : 'embedded server started by the tester'}; ${r.server.note})`);
  lines.push('');
  lines.push(`${''.padEnd(w1)}${`${r.push ? 'idle' : 'steady'} ${r.steady.fromS}-${r.steady.toS} s`.padEnd(w2)}total ${r.total.fromS}-${r.total.toS} s`);
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
  if (r.push) lines.push(...pushLines(r.push, c.rampS ?? NaN), '');
  lines.push(`ramp: every agent's first check-in had ended ${r.warmup.firstCheckinsEndedS} s after the start${r.warmup.agentsWithoutCheckin ? ` (${r.warmup.agentsWithoutCheckin} agents never ended one)` : ''}, `
    + `every agent had had one answered (the fleet was up) ${r.warmup.agentsNeverAnswered ? `never (${r.warmup.agentsNeverAnswered} agents never had one)` : `${r.warmup.fleetUpS} s after the start`}; `
    + (r.push ? 'push mode: the check-in targets do not apply' : r.settledAtS === null ? 'the run never settled (its last second missed the p99 target or had errors)' : `settled from ${r.settledAtS} s on (every later second: p99 <= ${TARGETS.p99Ms} ms, no errors)`));
  lines.push(`targets, on the steady state: ${r.steadyDefinition}`);
  for (const t of r.targets) lines.push(`  ${t.name.padEnd(24)}${t.target.padEnd(14)}${f(t.value, r.push ? 0 : t.name.startsWith('answered') ? 3 : 2).padEnd(12)}${t.pass ? 'PASS' : 'FAIL'}`);
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

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

function pushLines(p: PushReport, rampS: number): string[] {
  const o = p.open;
  const out = [`push channels: ${o.agentsOpened}/${p.agents} agents opened theirs (first check-ins spread over ${f(rampS, 0)} s)`
    + (o.allOpenedS === null ? ' (not all)' : `, the last ${f(o.allOpenedS, 1)} s after the start`)
    + (o.allOpenAtOnceS === null ? '; never all open at once' : `; all open at once from ${f(o.allOpenAtOnceS, 0)} s`)
    + `; ${o.offered} offered by their check-ins, ${o.reopened} reopened`];
  out.push(`  opening handshake             TCP + TLS + upgrade p50 ${f(o.handshakeMs.p50, 1)} ms, p99 ${f(o.handshakeMs.p99, 1)} ms, max ${f(o.handshakeMs.max, 0)} ms`);
  out.push(`  failed openings by kind       ${counts(o.failed)}`);
  out.push(`  drops by cause                ${counts(o.dropped)}`);
  for (const [k, m] of Object.entries(o.firstErrors)) out.push(`    first ${k}: ${m.slice(0, 160)}`);
  out.push(`  messages received by type     ${counts(p.messages)} (status: ${counts(p.statuses)}); ${p.pings} pings answered`);
  const m = p.memory;
  out.push(`  server RSS per connection     ${f(m.kbPerConnection, 1)} KB: ${f(m.serverRssBeforeMB, 0)} MB before the agents, ${f(m.serverRssMB, 0)} MB with ${f(m.connections, 0)} open`
    + (m.windowS ? ` (${m.windowS[0]}-${m.windowS[1]} s)` : ' (no idle phase)'));
  for (const x of m.processes ?? []) out.push(`    ${x.name.padEnd(28)}${f(x.beforeMB, 0)} -> ${f(x.withMB, 0)} MB over ${f(x.connections, 0)} connections: ${f(x.kbPerConnection, 1)} KB each`);
  out.push(`  tester RSS                    ${f(m.testerRssMB, 0)} MB (${f(m.testerKBPerConnection, 1)} KB per connection, every tester process)`);
  const c = p.idleCpu;
  out.push(`  idle server CPU               ${f(c.serverCores.avg, 3)} cores on average (max ${f(c.serverCores.max, 2)})${c.windowS ? ` over ${c.windowS[0] - 1}-${c.windowS[1]} s` : ''}; tester ${f(c.testerCores, 2)}, machine ${f(c.machineCores, 2)}, others ${f(c.otherCores, 2)}`);
  for (const x of c.processes ?? []) out.push(`    ${(x.infra ? `(${x.name}, not summed)` : x.name).padEnd(28)}${f(x.cores, 3)} cores`);
  const q = p.required;
  if (!q) {
    out.push('  REQUIRED: not measured (no idle phase, or --push-required 0)');
    return out;
  }
  out.push(`  REQUIRED to ${q.requested} environments at once: ${q.requested} calls (GET ${q.path}) pipelined on ${q.connections} keep-alive connections (opened before, in ${f(q.connectMs / 1000, 1)} s),`
    + ` written from ${f(q.firedAtS, 1)} s in ${f(q.fireMs, 0)} ms`);
  out.push(`    received by                 ${q.reached}/${q.requested} agents (${q.viaPush} by push message, ${q.viaPoll} by poll while their channel was down)`
    + `${q.alreadyRequired ? `, ${q.alreadyRequired} were REQUIRED already (first snapshot)` : ''}${q.notReached ? `; ${q.notReached} whose call asked for the tunnel NEVER` : ''}`);
  if (q.callsFailed) {
    out.push(`    calls failed                ${q.callsFailed} before the server required the tunnel (answers below): their agents were never asked`
      + `${q.reachedOtherwise ? ` (${q.reachedOtherwise} of them got REQUIRED anyway, from a first snapshot; not in the timings)` : ''}`);
  }
  const l = q.receivedMs;
  out.push(`    first call written to       first ${f(l.min, 0)} ms, p50 ${f(l.p50, 0)} ms, p99 ${f(l.p99, 0)} ms, last ${f(l.max, 0)} ms`
    + (q.allReachedS === null ? ' (not every agent)' : `: every agent had it ${f(q.allReachedS, 2)} s after the first call`));
  out.push(`    server CPU meanwhile        ${f(q.serverCoreSeconds, 2)} core-s`);
  out.push(`    calls' answers              ${counts(q.outcomes)} (${sum(q.outcomes)}; they wait for tunnels the simulated agents never open)`);
  // Error answers carry their cause in the outcome already.
  for (const [k, msg] of Object.entries(q.messages)) if (!k.includes(':')) out.push(`      first ${k}: ${msg.slice(0, 160)}`);
  out.push(`  result: ${p.pass ? 'every channel opened and every agent received REQUIRED' : 'FAIL: not every channel opened, or not every agent received REQUIRED'}`);
  return out;
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
