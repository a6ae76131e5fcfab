/**
 * Worker thread entry: runs a `Fleet` for its share of the agents and reports to the main thread
 * every second (samples as transferable typed arrays, plus counters).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetCounters, type FleetOptions } from './fleet';
import { modeByName } from './modes';
import type { SampleBatch } from './stats';
import { TunnelAgents, type TunnelCounters, type TunnelOpenEvent } from './tunnels';

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
  | {
    type: 'report'; batch: SampleBatch; counters: FleetCounters; loop: LoopHealth; final: boolean;
    /** The storm's agents in this worker: counters, and tunnels opened since the previous report. */
    tunnels?: { counters: TunnelCounters; events: TunnelOpenEvent[] };
  }
  | { type: 'failed'; message: string };

/** Messages from the main thread to a worker: stop early, or arm the storm's agents. */
export type MainMessage = { type: 'stop' } | { type: 'arm' };

async function run(): Promise<void> {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  const stormAgents = init.fleet.agents.filter((a) => a.storm);
  // The tunnels call back into the fleet, made after them.
  const ref: { fleet?: Fleet } = {};
  let tunnels: TunnelAgents | undefined;
  if (stormAgents.length) {
    if (!init.fleet.tunnel) throw new Error('storm agents without the tunnel server address');
    tunnels = new TunnelAgents(stormAgents, {
      tunnelAddr: init.fleet.tunnel.addr, fingerprint: init.fleet.tunnel.fingerprint,
      now: () => ref.fleet!.now(), pollSoon: (i) => ref.fleet!.pollSoon(i),
    });
    await tunnels.start();
  }
  const fleet = new Fleet(init.fleet, modeByName(init.mode).driver(), tunnels);
  ref.fleet = fleet;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let elu = performance.eventLoopUtilization();
  const report = (final: boolean) => {
    const { batch, transfer } = fleet.samples.take();
    const now = performance.eventLoopUtilization();
    const loop: LoopHealth = { busy: performance.eventLoopUtilization(now, elu).utilization, delayP99Ms: delay.percentile(99) / 1e6, delayMaxMs: delay.max / 1e6 };
    elu = now;
    delay.reset();
    const msg: WorkerMessage = {
      type: 'report', batch, counters: { ...fleet.counters, messages: { ...fleet.counters.messages } }, loop, final,
      tunnels: tunnels && { counters: structuredClone(tunnels.counters), events: tunnels.takeEvents() },
    };
    port.postMessage(msg, transfer);
  };
  const every = setInterval(() => report(false), 1000);
  port.on('message', (m: MainMessage) => {
    if (m.type === 'stop') fleet.stopEarly();
    else if (m.type === 'arm') tunnels?.arm();
  });
  fleet.start();
  void fleet.finish().then(() => {
    clearInterval(every);
    report(true);
    port.close();
  });
}

run().catch((err) => {
  parentPort!.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerMessage);
});
