/**
 * Worker entry: runs a `Fleet` for its share of the agents and reports to the main thread every
 * second (samples as transferable typed arrays, plus counters). It runs as a worker thread, or as
 * a child process (forked with advanced serialization, its init as the first message) when the
 * agents' sockets would not fit in one process's open-file limit.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetCounters, type FleetOptions } from './fleet';
import { modeByName } from './modes';
import { PushAgents, type PushCounters, type PushEvents } from './push';
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
    /** Push mode: the channels' counters, and events since the previous report. */
    push?: { counters: PushCounters; events: PushEvents };
  }
  | { type: 'failed'; message: string };

/** Messages from the main thread to a worker: stop early, or arm the storm's agents. A child process gets its init first. */
export type MainMessage = { type: 'stop' } | { type: 'arm' } | { type: 'init'; init: WorkerInit };

/** The way to the main thread: a worker thread's port, or a child process's IPC channel. */
interface Channel {
  post(m: WorkerMessage, transfer?: ArrayBuffer[]): void;
  onMessage(f: (m: MainMessage) => void): void;
  close(): void;
}

function threadChannel(): Channel {
  const port = parentPort!;
  return {
    post: (m, transfer) => port.postMessage(m, transfer ?? []),
    onMessage: (f) => port.on('message', f),
    close: () => port.close(),
  };
}

function processChannel(): Channel {
  return {
    post: (m) => process.send!(m),
    onMessage: (f) => process.on('message', f as (m: unknown) => void),
    close: () => process.disconnect(),
  };
}

async function run(channel: Channel, init: WorkerInit): Promise<void> {
  const mode = modeByName(init.mode);
  const stormAgents = init.fleet.agents.filter((a) => a.storm);
  // The tunnels and push channels call back into the fleet, made after them.
  const ref: { fleet?: Fleet } = {};
  const now = () => ref.fleet!.now();
  let tunnels: TunnelAgents | undefined;
  let push: PushAgents | undefined;
  if (stormAgents.length) {
    if (!init.fleet.tunnel) throw new Error('storm agents without the tunnel server address');
    tunnels = new TunnelAgents(stormAgents, {
      tunnelAddr: init.fleet.tunnel.addr, fingerprint: init.fleet.tunnel.fingerprint, now, pollSoon: (i) => ref.fleet!.pollSoon(i),
    });
    await tunnels.start();
  }
  if (mode.push) {
    push = new PushAgents(init.fleet.agents.map((a) => ({ ...a, port: a.port ?? init.fleet.port })), {
      host: init.fleet.host, insecure: init.fleet.insecure, now,
      suspend: (i) => ref.fleet!.suspend(i), resume: (i) => ref.fleet!.resume(i), dropPoll: (i) => ref.fleet!.dropIdle(i),
      acceptPushed: (i, etag, checkin) => ref.fleet!.acceptPushed(i, etag, checkin),
    });
  }
  const fleet = new Fleet(init.fleet, mode.driver(), tunnels ?? push);
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
      push: push && { counters: structuredClone(push.counters), events: push.takeEvents() },
    };
    channel.post(msg, transfer);
  };
  const every = setInterval(() => report(false), 1000);
  channel.onMessage((m) => {
    if (m.type === 'stop') fleet.stopEarly();
    else if (m.type === 'arm') tunnels?.arm();
  });
  fleet.start();
  void fleet.finish().then(() => {
    clearInterval(every);
    report(true);
    channel.close();
  });
}

if (!isMainThread) {
  const channel = threadChannel();
  run(channel, workerData as WorkerInit).catch((err) => channel.post({ type: 'failed', message: (err as Error).message }));
} else if (process.send) {
  const channel = processChannel();
  process.once('message', (m: MainMessage) => {
    if (m.type !== 'init') return channel.post({ type: 'failed', message: `expected the init message, got ${m.type}` });
    run(channel, m.init).catch((err) => channel.post({ type: 'failed', message: (err as Error).message }));
  });
}
