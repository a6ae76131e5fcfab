/**
 * Edge check-in load test: `npm run loadtest -- --agents 15000 --interval 5 --duration 120`.
 *
 * Creates (or reuses) Edge environments through the public API, then runs that many simulated
 * agents on worker threads (or child processes), each checking in over its own keep-alive TLS
 * connection with the real agent's headers and ETag cache, and reports throughput, latency,
 * errors, bytes per check-in and the server's CPU and memory against the targets; `--mode push`
 * holds push channels instead and reports memory per connection, idle CPU and the time to push
 * REQUIRED to every agent. See README "Load testing" and `--help`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { hostLimits, misfit } from './limits';
import { modeByName } from './modes';
import { parseOptions, USAGE, type LoadTestOptions } from './options';
import { Monitor } from './monitor';
import { buildReport, TARGETS } from './report';
import type { PushData } from './pushreport';
import { runPushPhases, type PushPhases } from './pushrun';
import { infraProcesses, processRssMB, type SampledProcess } from './sampler';
import { detectServerPids, readServerLog, startDistributedServer, startEmbeddedServer, type LaunchedServer, type ServerLog } from './server';
import { AdminClient, provision } from './setup';
import { fireStorm, type StormCalls } from './storm';
import { renderTable } from './table';
import { concatBatches } from './stats';
import type { WorkerInit } from './worker';
import { planWorkers, startWorker, type WorkerHandle } from './workers';

const log = (line: string) => process.stderr.write(`loadtest: ${line}\n`);

function isLocalHost(host: string): boolean {
  if (host === 'localhost' || host === '127.0.0.1' || host === '::1') return true;
  return Object.values(os.networkInterfaces()).flat().some((i) => i?.address === host);
}

async function main(): Promise<number> {
  let opts: LoadTestOptions;
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    opts = parsed;
    modeByName(opts.mode);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const mode = modeByName(opts.mode);
  const plan = planWorkers(opts.agents, opts.workers, opts.processes);
  const limits = hostLimits();
  const problem = misfit(opts, plan, limits);
  if (problem) {
    process.stderr.write(`${problem}\n`);
    return 2;
  }
  // Tunnel ports are virtual (64,512 per tunnel node): every agent's environment can be REQUIRED at once.
  const required = { n: mode.push ? opts.pushRequired ?? opts.agents : 0 };

  let server: LaunchedServer | undefined;
  let client: AdminClient | undefined;
  const workers: WorkerHandle[] = [];
  try {
    if (!opts.target) {
      log(`starting the ${opts.shape === 'distributed' ? `distributed shape (NATS ${opts.nats}, Redis ${opts.redis})` : 'embedded server'} (log level ${opts.serverLogLevel}${opts.serverNodeArgs.length ? `, node ${opts.serverNodeArgs.join(' ')}` : ''}${Object.entries(opts.serverEnv).map(([k, v]) => `, ${k}=${v}`).join('')})`);
      const launch = {
        logLevel: opts.serverLogLevel, nodeArgs: opts.serverNodeArgs, env: opts.serverEnv, nats: opts.nats, redis: opts.redis, pollingInGateways: opts.pollingInGateways,
        gateways: opts.gateways, dataDir: opts.dataDir,
      };
      server = opts.shape === 'distributed' ? await startDistributedServer(launch) : await startEmbeddedServer(launch);
      log(`${server.processes.map((p) => `${p.name} pid ${p.pid}${p.port ? ` on ${p.port}` : ''}`).join(', ')}; data in ${server.dataDir}${server.kept ? ' (kept)' : ''}${server.namespace ? `, namespace ${server.namespace}` : ''}`);
    }
    const base = opts.target ?? server!.bases[0];
    client = new AdminClient(base, opts.insecure, opts.concurrency);
    if (server) await client.initAdmin(opts.username, opts.password);
    await client.signIn(opts);
    const prov = await provision(client, opts, mode, log);
    for (const n of prov.notes) log(n);
    const auth = client.authHeaders;
    // Its keep-alive connections would count as server connections during the run.
    await client.close();
    client = undefined;

    const urls = new Set(prov.agents.map((a) => a.apiUrl));
    if (urls.size !== 1) throw new Error(`the environments' Edge keys name ${urls.size} different API URLs (${[...urls].slice(0, 5).join(', ')}): one run checks in on one URL`);
    const apiUrl = new URL([...urls][0]);
    const host = apiUrl.hostname.replace(/^\[|\]$/g, '');
    const port = Number(apiUrl.port || 443);
    if (apiUrl.origin !== base) log(`agents check in on ${apiUrl.origin}, the API URL in their Edge keys`);
    // The distributed shape's gateways: every agent's Edge key names the first; the agents are
    // dealt over all of them instead, as an L4 load balancer in front of them would.
    const ports = server ? server.bases.map((b) => Number(new URL(b).port)) : [port];
    if (server && ports[0] !== port) throw new Error(`the Edge keys name port ${port}, not the gateway's ${ports[0]}`);

    let processes: SampledProcess[];
    let serverNote: string;
    if (server) {
      processes = server.processes.map((p) => ({ name: p.name, pid: p.pid }));
      serverNote = server.processes.length === 1 ? `pid ${server.processes[0].pid}`
        : `${server.processes.length} processes: ${server.processes.map((p) => `${p.name} (${p.services}${p.port ? ` :${p.port}` : ''}) pid ${p.pid}`).join(', ')}`;
      if (server.shape === 'distributed') processes.push(...infraProcesses());
    } else {
      let pids: number[];
      if (opts.serverPids) {
        pids = opts.serverPids;
        serverNote = `pids ${pids.join(', ')} (--server-pids)`;
      } else if (isLocalHost(host)) {
        ({ pids, note: serverNote } = detectServerPids(port));
      } else {
        pids = [];
        serverNote = `${host} is not this machine: server CPU/RSS not sampled`;
      }
      processes = pids.map((pid) => ({ name: `pid ${pid}`, pid }));
    }
    log(serverNote);

    const keys = new Set(prov.agents.map((a) => `${a.tunnelAddr}|${a.fingerprint}`));
    if (opts.storm && keys.size !== 1) throw new Error(`the environments' Edge keys name ${keys.size} different tunnel servers: a storm needs one`);

    // Push mode: the server's memory before any agent connected.
    let rssBeforeMB: number[] = [];
    if (mode.push) {
      const reads: number[][] = [];
      for (let i = 0; i < 3; i++) {
        if (i) await new Promise((r) => setTimeout(r, 500));
        reads.push(processes.map((p) => processRssMB(p.pid)));
      }
      rssBeforeMB = processes.map((_, i) => reads.reduce((a, r) => a + r[i], 0) / reads.length);
    }

    const runStartEpochMs = Date.now() + 1000;
    const startedAt = new Date(runStartEpochMs).toISOString();
    const sinceStart = () => performance.now() + performance.timeOrigin - runStartEpochMs;
    // Agents are dealt round-robin so every worker has first check-ins spread over the whole ramp.
    const nWorkers = Math.min(plan.count, prov.agents.length);
    const slices: WorkerInit['fleet']['agents'][] = Array.from({ length: nWorkers }, () => []);
    prov.agents.forEach((a, i) => {
      const slice = slices[i % nWorkers];
      slice.push({
        index: i, endpointId: a.endpointId, edgeId: a.edgeId, firstAtMs: (i / prov.agents.length) * opts.rampS * 1000,
        port: ports.length > 1 ? ports[slice.length % ports.length] : undefined,
      });
    });
    // The storm's agents: evenly spread over each worker's agents (so over the ramp and the gateways).
    const stormIds: number[] = [];
    slices.forEach((slice, w) => {
      const k = Math.floor(opts.storm / nWorkers) + (w < opts.storm % nWorkers ? 1 : 0);
      for (let j = 0; j < k; j++) {
        const a = slice[Math.floor((j * slice.length) / k)];
        a.storm = true;
        stormIds.push(a.endpointId);
      }
    });
    const tunnel = opts.storm ? { addr: prov.agents[0].tunnelAddr, fingerprint: prov.agents[0].fingerprint } : undefined;

    const monitor = new Monitor({
      runStartEpochMs, durationS: mode.push ? Infinity : opts.durationS, expectedPerS: prov.agents.length / opts.intervalS, processes,
      localServerPorts: isLocalHost(host) ? ports : undefined, push: mode.push, agents: prov.agents.length,
    });
    const finished = new Set<number>();
    let failure: string | undefined;
    const allDone = new Promise<void>((resolve) => {
      slices.forEach((agents, w) => {
        const init: WorkerInit = {
          mode: mode.name,
          fleet: {
            runStartEpochMs, durationMs: mode.push ? Infinity : opts.durationS * 1000, intervalS: opts.intervalS, timeoutMs: opts.timeoutMs,
            host, port, insecure: opts.insecure, agents, tunnel,
          },
        };
        const done = () => {
          finished.add(w);
          if (finished.size === slices.length) resolve();
        };
        const worker = startWorker(plan.kind, init, {
          message: (m) => {
            if (m.type === 'failed') {
              failure ??= `worker ${w}: ${m.message}`;
              done();
              return;
            }
            monitor.onReport(w, m);
            if (m.final) done();
          },
          error: (err) => {
            failure ??= `worker ${w}: ${err.stack ?? err.message}`;
            done();
          },
          exit: done,
        });
        workers.push(worker);
        if (worker.pid) monitor.addTesterProcess(worker.pid);
      });
    });
    let interrupted = false;
    const stopWorkers = () => {
      for (const w of workers) w.post({ type: 'stop' });
    };
    const onSignal = () => {
      log('interrupted: stopping the agents and reporting what was measured');
      interrupted = true;
      stopWorkers();
    };
    process.once('SIGINT', onSignal);
    for (const p of server?.processes ?? []) {
      p.child.once('exit', (code, signal) => {
        failure ??= `the server process ${p.name} exited (code ${code}, signal ${signal}) during the run`;
        stopWorkers();
      });
    }

    const where = `${prov.agents.length} agents on ${nWorkers} worker ${plan.kind === 'process' ? `processes (${Math.ceil(prov.agents.length / nWorkers)} agents each at most)` : 'thread(s)'}${ports.length > 1 ? `, split over ${ports.length} gateways (ports ${ports.join(', ')})` : ''}, first check-ins spread over ${opts.rampS} s`;
    log(mode.push
      ? `${where}; each opens its push channel when its check-in offers it; idle phase ${opts.durationS} s once every channel is open, then ${required.n} environments made REQUIRED at once`
      : `${where}, warm-up ${opts.warmupS === undefined ? 'until every agent has had a check-in answered, plus one interval' : `${opts.warmupS} s`}, run ${opts.durationS} s${opts.storm ? `, tunnel storm of ${stormIds.length} ${opts.stormAtS === undefined ? '10 s after the fleet is up' : `at ${opts.stormAtS} s`}` : ''}`);
    await new Promise((r) => setTimeout(r, Math.max(0, runStartEpochMs - Date.now())));
    const ticker = setInterval(() => monitor.tick(), 1000);
    let storm: Promise<StormCalls | undefined> = Promise.resolve(undefined);
    let stormTimer: NodeJS.Timeout | undefined;
    let stormNotFired = () => {};
    let stormFiredAtS: number | undefined;
    if (opts.storm) {
      storm = new Promise((resolve) => {
        stormNotFired = () => resolve(undefined);
        const fire = (why: string) => {
          if (failure || finished.size) return resolve(undefined);
          stormNotFired = () => {};
          stormFiredAtS = (Date.now() - runStartEpochMs) / 1000;
          log(`storm: opening ${stormIds.length} connections, then ${stormIds.length} Docker API calls (GET /api/endpoints/{id}/docker${opts.stormPath}) at once, ${stormFiredAtS.toFixed(1)} s after the start (${why})`);
          fireStorm({
            bases: server ? server.bases : [base], auth, insecure: opts.insecure, endpointIds: stormIds, path: opts.stormPath,
            timeoutMs: opts.stormTimeoutMs, now: () => Date.now() - runStartEpochMs,
            beforeFire: () => {
              for (const w of workers) w.post({ type: 'arm' });
            },
          }).then((r) => {
            const ok = r.calls.filter((c) => c.outcome === '200').length;
            log(`storm: connections opened in ${(r.connectMs / 1000).toFixed(1)} s, fired at ${(r.firedAt / 1000).toFixed(1)} s; ${ok}/${r.calls.length} calls answered 200, the last ended ${((Math.max(...r.calls.map((c) => c.end)) - r.firedAt) / 1000).toFixed(2)} s after the firing`);
            resolve(r);
          }, (err) => {
            log(`storm failed: ${(err as Error).message}`);
            resolve(undefined);
          });
        };
        if (opts.stormAtS !== undefined) {
          stormTimer = setTimeout(() => fire('--storm-at'), Math.max(0, runStartEpochMs + opts.stormAtS * 1000 - Date.now()));
          return;
        }
        // After the fleet is steady: 10 s after every agent has had a check-in answered.
        let upAt: number | undefined;
        stormTimer = setInterval(() => {
          const t = (Date.now() - runStartEpochMs) / 1000;
          if (upAt === undefined && monitor.answeredAgents() >= prov.agents.length) upAt = t;
          if (upAt !== undefined && t >= upAt + 10) {
            clearInterval(stormTimer);
            fire(`10 s after every agent had had a check-in answered, at ${upAt.toFixed(1)} s`);
          } else if (t >= opts.stormLatestS) {
            clearInterval(stormTimer);
            fire(`the latest start that leaves it time: ${upAt === undefined ? `${prov.agents.length - monitor.answeredAgents()} agents had not yet had a check-in answered` : 'the fleet was up only at ' + upAt.toFixed(1) + ' s'}`);
          }
        }, 250);
      });
    }
    let pushPhases: PushPhases | undefined;
    if (mode.push) {
      pushPhases = await runPushPhases({
        opts, required: required.n, monitor, agents: prov.agents.length, endpointIds: prov.agents.map((a) => a.endpointId), bases: server ? server.bases : [base], auth,
        now: sinceStart, stopped: () => !!failure || interrupted || finished.size > 0, log,
      });
      stopWorkers();
    }
    await allDone;
    clearInterval(ticker);
    monitor.tick(true);
    clearTimeout(stormTimer);
    clearInterval(stormTimer);
    stormNotFired();
    const stormCalls = await storm;
    process.removeListener('SIGINT', onSignal);
    if (failure) log(`run cut short: ${failure}`);

    const logFiles = server ? server.processes.map((p) => p.logFile) : opts.serverLog ? [opts.serverLog] : [];
    let serverLog: ServerLog | undefined;
    if (logFiles.length) {
      log(`reading the server log${logFiles.length > 1 ? 's' : ''} (${(logFiles.reduce((a, f) => a + fs.statSync(f).size, 0) / 1048576).toFixed(0)} MB) for warn/error lines`);
      serverLog = await readServerLog(logFiles);
    }
    const push: PushData | undefined = pushPhases && {
      ...pushPhases, agents: prov.agents.length, counters: monitor.pushTotals(), opens: monitor.pushOpens, status: monitor.pushStatus, rssBeforeMB,
    };
    // Push mode: the run lasted as long as its phases did.
    const durationS = push ? Math.max(1, Math.floor(sinceStart() / 1000)) : opts.durationS;
    const report = buildReport({
      startedAt, runStartEpochMs, target: base,
      config: { ...opts, pushRequired: mode.push ? required.n : undefined, password: undefined, apiKey: opts.apiKey ? '[set]' : undefined, workers: nWorkers, workerKind: plan.kind, targets: TARGETS, node: process.version, cpus: os.availableParallelism(), openFileLimit: limits.openFiles },
      server: {
        embedded: !!server, shape: server?.shape, pids: processes.filter((p) => !p.infra).map((p) => p.pid),
        processes: processes.map((p) => {
          const q = server?.processes.find((x) => x.pid === p.pid);
          return { ...p, services: q?.services, port: q?.port };
        }),
        note: serverNote,
      },
      setup: { created: prov.created, reused: prov.reused, intervalUpdated: prov.intervalUpdated, createSeconds: prov.createSeconds, notes: prov.notes, apiUrl: apiUrl.origin, failure },
      agents: prov.agents.length, intervalS: opts.intervalS, durationS, rampS: opts.rampS, warmupS: opts.warmupS, slowMs: opts.slowMs,
      samples: concatBatches(monitor.batches), endpointIds: prov.agents.map((a) => a.endpointId), timeline: monitor.timeline, counters: monitor.totals(), serverLog,
      storm: opts.storm ? { agents: stormIds.length, atS: stormFiredAtS, calls: stormCalls, tunnels: monitor.tunnelTotals(), events: monitor.tunnelEvents } : undefined,
      push,
    });
    process.stdout.write(`${renderTable(report)}\n`);
    if (opts.report) {
      fs.writeFileSync(opts.report, `${JSON.stringify(report, null, 1)}\n`);
      log(`report written to ${opts.report}`);
    }
    return failure ? 1 : report.pass && (!report.storm || report.storm.pass) && (!report.push || report.push.pass) ? 0 : 1;
  } finally {
    if (opts.keepServerLogs && server) {
      fs.mkdirSync(opts.keepServerLogs, { recursive: true });
      for (const p of server.processes) fs.copyFileSync(p.logFile, path.join(opts.keepServerLogs, `${p.name}.log`));
      log(`server log${server.processes.length > 1 ? 's' : ''} copied to ${opts.keepServerLogs}`);
    }
    await Promise.all(workers.map((w) => w.terminate()));
    await client?.close();
    await server?.stop();
  }
}

main().then((code) => {
  process.exitCode = code;
}, (err) => {
  log((err as Error).stack ?? String(err));
  process.exitCode = 1;
});
