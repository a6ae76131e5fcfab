/**
 * Heartbeat flush benchmark: what `state.recordCheckins` costs the process it runs in, the one
 * that in the embedded default also answers every check-in.
 *
 *   npm run bench:heartbeats -- [--count 15000] [--rounds 6] [--data-dir DIR]
 *
 * It starts the state service in this process on an embedded store (a temporary data dir, or
 * DIR, reused when it already holds the environments), creates `count` Edge environments and binds
 * an agent to each, then flushes one heartbeat per environment `rounds` times, in the chunks the
 * polling service sends (FLUSH_BATCH), one chunk after the other as the flusher does. Printed per
 * flush: CPU ms (and µs per heartbeat), the longest event-loop block of any chunk
 * (`monitorEventLoopDelay`, 1 ms resolution), and GC pauses; CPU and GC are this process's, so a
 * busy machine changes wall times but hardly these.
 */
import fs from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../shared/config';
import { call } from '../../shared/contracts';
import { pool } from '../../shared/concurrency';
import { startNode } from '../../services/node';
import { FLUSH_BATCH } from '../../services/polling/flusher';
import { tempDataDir, uniqueNamespace } from '../helpers/ids';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '15000' },
    rounds: { type: 'string', default: '6' },
    'data-dir': { type: 'string' },
  },
});
const COUNT = Number(args.count);
const ROUNDS = Number(args.rounds);

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const dataDir = args['data-dir'] ?? tempDataDir('capstan-hb-bench-');
  fs.mkdirSync(dataDir, { recursive: true });
  const config = loadConfig({ CAPSTAN_LOG_LEVEL: 'warn' }, {
    services: ['state'], dataDir, namespace: uniqueNamespace('hbbench'), publicUrl: 'https://capstan.example.com:9443',
  });
  const node = await startNode(config);
  const { broker } = node;
  try {
    const have = await call(broker, 'state.edgeEnvironments', {});
    const ids = have.map((e) => e.Id);
    if (ids.length < COUNT) {
      const t0 = Date.now();
      const todo = Array.from({ length: COUNT - ids.length }, (_, i) => ids.length + i);
      await pool(todo, 64, async (i) => {
        const env = await call(broker, 'state.createEnvironment', { Name: `hb-${i}`, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' });
        await call(broker, 'state.bindEdgeId', { id: env.Id, edgeId: `agent-${env.Id}`, agentVersion: '2.23.0', platform: 1 });
        ids.push(env.Id);
      });
      console.log(`created and bound ${todo.length} environments in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const fleet = ids.slice(0, COUNT);

    let gcMs = 0;
    let gcCount = 0;
    let gcMax = 0;
    const gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gcMs += e.duration;
        gcCount++;
        gcMax = Math.max(gcMax, e.duration);
      }
    });
    gc.observe({ entryTypes: ['gc'] });
    const delay = monitorEventLoopDelay({ resolution: 1 });

    console.log(`${fleet.length} heartbeats per flush, chunks of ${FLUSH_BATCH}`);
    console.log('round  CPU ms  µs/heartbeat  longest block ms (max / median chunk)  GC ms (count, max)  wall ms');
    const perHeartbeat: number[] = [];
    const blocks: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Later than anything stored: every heartbeat is a change to write.
      const at = Math.floor(Date.now() / 1000) + round;
      const items = fleet.map((id) => ({ id, at }));
      [gcMs, gcCount, gcMax] = [0, 0, 0];
      const chunkMax: number[] = [];
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < items.length; i += FLUSH_BATCH) {
        delay.reset();
        delay.enable();
        await call(broker, 'state.recordCheckins', { items: items.slice(i, i + FLUSH_BATCH) });
        // Let the timer fire once more, so a block at the very end of the chunk is counted.
        await new Promise((r) => setTimeout(r, 2));
        delay.disable();
        chunkMax.push(delay.max / 1e6);
      }
      const wall = performance.now() - t0;
      const cpu = cpuMs(process.cpuUsage(cpu0));
      await new Promise((r) => setTimeout(r, 50));
      const us = (cpu * 1000) / items.length;
      perHeartbeat.push(us);
      blocks.push(...chunkMax);
      console.log(`${String(round).padStart(5)}  ${cpu.toFixed(1).padStart(6)}  ${us.toFixed(2).padStart(12)}  ` +
        `${Math.max(...chunkMax).toFixed(1).padStart(8)} / ${median(chunkMax).toFixed(1).padEnd(28)}  ` +
        `${gcMs.toFixed(1).padStart(5)} (${gcCount}, ${gcMax.toFixed(1)})`.padEnd(20) + `  ${wall.toFixed(0).padStart(7)}`);
    }
    gc.disconnect();
    // The first round warms the code up: the summary is of the others.
    const warm = perHeartbeat.slice(1);
    const warmBlocks = blocks.slice(Math.ceil(fleet.length / FLUSH_BATCH));
    console.log(`after round 1: median ${median(warm).toFixed(2)} µs CPU per heartbeat; longest block per chunk: ` +
      `median ${median(warmBlocks).toFixed(1)} ms, max ${Math.max(...warmBlocks).toFixed(1)} ms`);
    console.log(`heap used ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MB`);
  } finally {
    await node.stop();
    if (!args['data-dir']) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
