/**
 * Edge check-in load test: `npm run loadtest -- --agents 15000 --interval 5 --duration 120`.
 *
 * Creates (or reuses) Edge environments through the public API, then runs that many simulated
 * agents on worker threads, each checking in over its own keep-alive TLS connection with the
 * real agent's headers and ETag cache, and reports throughput, latency, errors, bytes per check-in
 * and the server's CPU and memory against the targets. See README "Load testing" and `--help`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { modeByName } from './modes';
import { parseOptions, USAGE, type LoadTestOptions } from './options';
import { Monitor } from './monitor';
import { buildReport, TARGETS } from './report';
import { detectServerPids, readServerLog, startEmbeddedServer, type EmbeddedServer, type ServerLog } from './server';
import { AdminClient, provision } from './setup';
import { renderTable } from './table';
import { concatBatches } from './stats';
import type { MainMessage, WorkerInit, WorkerMessage } from './worker';

const log = (line: string) => process.stderr.write(`loadtest: ${line}\n`);

/** Open-file limit of this process (the embedded server inherits it). */
function openFileLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return Infinity;
  }
}

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
  // Each agent holds one socket; the embedded server holds the other end of each.
  const need = opts.agents + 512;
  const limit = openFileLimit();
  if (limit < need) {
    process.stderr.write(`the open-file limit is ${limit}, below the ${need} this run needs (one socket per agent, on both ends): run it through npm run loadtest, which raises it with ulimit -n, or raise it yourself\n`);
    return 2;
  }

  let server: EmbeddedServer | undefined;
  let client: AdminClient | undefined;
  const workers: Worker[] = [];
  try {
    if (!opts.target) {
      log(`starting the embedded server (log level ${opts.serverLogLevel}${opts.serverNodeArgs.length ? `, node ${opts.serverNodeArgs.join(' ')}` : ''})`);
      server = await startEmbeddedServer({ logLevel: opts.serverLogLevel, nodeArgs: opts.serverNodeArgs });
      log(`embedded server pid ${server.pid} on ${server.base}, data in ${server.dataDir}`);
    }
    const base = opts.target ?? server!.base;
    client = new AdminClient(base, opts.insecure, opts.concurrency);
    if (server) await client.initAdmin(opts.username, opts.password);
    await client.signIn(opts);
    const prov = await provision(client, opts, mode, log);
    for (const n of prov.notes) log(n);
    // Its keep-alive connections would count as server connections during the run.
    await client.close();
    client = undefined;

    const urls = new Set(prov.agents.map((a) => a.apiUrl));
    if (urls.size !== 1) throw new Error(`the environments' Edge keys name ${urls.size} different API URLs (${[...urls].slice(0, 5).join(', ')}): one run checks in on one URL`);
    const apiUrl = new URL([...urls][0]);
    const host = apiUrl.hostname.replace(/^\[|\]$/g, '');
    const port = Number(apiUrl.port || 443);
    if (apiUrl.origin !== base) log(`agents check in on ${apiUrl.origin}, the API URL in their Edge keys`);

    let pids: number[];
    let serverNote: string;
    if (server) {
      pids = [server.pid];
      serverNote = `pid ${server.pid}`;
    } else if (opts.serverPids) {
      pids = opts.serverPids;
      serverNote = `pids ${pids.join(', ')} (--server-pids)`;
    } else if (isLocalHost(host)) {
      ({ pids, note: serverNote } = detectServerPids(port));
    } else {
      pids = [];
      serverNote = `${host} is not this machine: server CPU/RSS not sampled`;
    }
    log(serverNote);

    // Agents are dealt round-robin so every worker has first check-ins spread over the whole ramp.
    const runStartEpochMs = Date.now() + 1000;
    const startedAt = new Date(runStartEpochMs).toISOString();
    const nWorkers = Math.min(opts.workers, prov.agents.length);
    const slices: WorkerInit['fleet']['agents'][] = Array.from({ length: nWorkers }, () => []);
    prov.agents.forEach((a, i) => {
      slices[i % nWorkers].push({ index: i, endpointId: a.endpointId, edgeId: a.edgeId, firstAtMs: (i / prov.agents.length) * opts.rampS * 1000 });
    });

    const monitor = new Monitor({
      runStartEpochMs, durationS: opts.durationS, expectedPerS: prov.agents.length / opts.intervalS, serverPids: pids,
      localServerPort: isLocalHost(host) ? port : undefined,
    });
    const finished = new Set<number>();
    let failure: string | undefined;
    const allDone = new Promise<void>((resolve) => {
      slices.forEach((agents, w) => {
        const init: WorkerInit = {
          mode: mode.name,
          fleet: { runStartEpochMs, durationMs: opts.durationS * 1000, intervalS: opts.intervalS, timeoutMs: opts.timeoutMs, host, port, insecure: opts.insecure, agents },
        };
        const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: init });
        workers.push(worker);
        const done = () => {
          finished.add(w);
          if (finished.size === slices.length) resolve();
        };
        worker.on('message', (m: WorkerMessage) => {
          if (m.type === 'failed') {
            failure ??= `worker ${w}: ${m.message}`;
            done();
            return;
          }
          monitor.onReport(w, m);
          if (m.final) done();
        });
        worker.on('error', (err) => {
          failure ??= `worker ${w}: ${err.stack ?? err.message}`;
          done();
        });
        worker.on('exit', done);
      });
    });
    const stopWorkers = () => {
      for (const w of workers) w.postMessage({ type: 'stop' } satisfies MainMessage);
    };
    const onSignal = () => {
      log('interrupted: stopping the agents and reporting what was measured');
      stopWorkers();
    };
    process.once('SIGINT', onSignal);
    server?.child.once('exit', (code, signal) => {
      failure ??= `the embedded server exited (code ${code}, signal ${signal}) during the run`;
      stopWorkers();
    });

    log(`${prov.agents.length} agents on ${nWorkers} worker thread(s), first check-ins spread over ${opts.rampS} s, warm-up ${opts.warmupS === undefined ? 'until every first check-in has ended' : `${opts.warmupS} s`}, run ${opts.durationS} s`);
    await new Promise((r) => setTimeout(r, Math.max(0, runStartEpochMs - Date.now())));
    const ticker = setInterval(() => monitor.tick(), 1000);
    await allDone;
    clearInterval(ticker);
    monitor.tick(true);
    process.removeListener('SIGINT', onSignal);
    if (failure) log(`run cut short: ${failure}`);

    const logFile = server?.logFile ?? opts.serverLog;
    let serverLog: ServerLog | undefined;
    if (logFile) {
      log(`reading the server log (${(fs.statSync(logFile).size / 1048576).toFixed(0)} MB) for warn/error lines`);
      serverLog = await readServerLog(logFile);
    }
    const report = buildReport({
      startedAt, runStartEpochMs, target: base,
      config: { ...opts, password: undefined, apiKey: opts.apiKey ? '[set]' : undefined, workers: nWorkers, targets: TARGETS, node: process.version, cpus: os.availableParallelism(), openFileLimit: limit },
      server: { embedded: !!server, pids, note: serverNote },
      setup: { created: prov.created, reused: prov.reused, intervalUpdated: prov.intervalUpdated, createSeconds: prov.createSeconds, notes: prov.notes, apiUrl: apiUrl.origin, failure },
      agents: prov.agents.length, intervalS: opts.intervalS, durationS: opts.durationS, rampS: opts.rampS, warmupS: opts.warmupS, slowMs: opts.slowMs,
      samples: concatBatches(monitor.batches), endpointIds: prov.agents.map((a) => a.endpointId), timeline: monitor.timeline, counters: monitor.totals(), serverLog,
    });
    process.stdout.write(`${renderTable(report)}\n`);
    if (opts.report) {
      fs.writeFileSync(opts.report, `${JSON.stringify(report, null, 1)}\n`);
      log(`report written to ${opts.report}`);
    }
    return failure ? 1 : report.pass ? 0 : 1;
  } finally {
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
