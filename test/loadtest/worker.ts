/**
 * Worker thread entry: runs a `Fleet` for its share of the agents and reports to the main thread
 * every second (samples as transferable typed arrays, plus counters).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetCounters, type FleetOptions } from './fleet';
import { modeByName } from './modes';
import type { SampleBatch } from './stats';

/** Data a worker is started with. */
export interface WorkerInit {
  mode: string;
  fleet: FleetOptions;
}

/**
 * How busy a worker's event loop was since its previous report. A saturated loop answers late and
 * its agents' latencies include that wait: the tester, not the server, would be measured.
 */
export interface LoopHealth {
  /** Event loop utilisation (0-1): busy share of the wall time, including time the OS did not run the thread. */
  busy: number;
  /** Timer lateness, p99 and max, ms. */
  delayP99Ms: number;
  delayMaxMs: number;
}

/** Messages from a worker to the main thread. */
export type WorkerMessage =
  | { type: 'report'; batch: SampleBatch; counters: FleetCounters; loop: LoopHealth; final: boolean }
  | { type: 'failed'; message: string };

/** Messages from the main thread to a worker. */
export type MainMessage = { type: 'stop' };

function run(): void {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  const fleet = new Fleet(init.fleet, modeByName(init.mode).driver());
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let elu = performance.eventLoopUtilization();
  const report = (final: boolean) => {
    const { batch, transfer } = fleet.samples.take();
    const now = performance.eventLoopUtilization();
    const loop: LoopHealth = { busy: performance.eventLoopUtilization(now, elu).utilization, delayP99Ms: delay.percentile(99) / 1e6, delayMaxMs: delay.max / 1e6 };
    elu = now;
    delay.reset();
    const msg: WorkerMessage = { type: 'report', batch, counters: { ...fleet.counters, messages: { ...fleet.counters.messages } }, loop, final };
    port.postMessage(msg, transfer);
  };
  const every = setInterval(() => report(false), 1000);
  port.on('message', (m: MainMessage) => {
    if (m.type === 'stop') fleet.stopEarly();
  });
  fleet.start();
  void fleet.finish().then(() => {
    clearInterval(every);
    report(true);
    port.close();
  });
}

try {
  run();
} catch (err) {
  parentPort!.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerMessage);
}
