/**
 * Command fan-out benchmark: creates N Edge environments in async mode, queues one command to all
 * of them with one `POST /api/commands`, and measures
 *   1. the API answer (one state commit),
 *   2. the time until every command is in its environment's delivery queue (batch `Enqueued`),
 *   3. the time until simulated agents have received and acknowledged every command (batch counters).
 *
 *   npm run bench:fanout -- [--count 15000] [--concurrency 32] [--agents 64] [--target https://host:9443 --username admin --password ...]
 *
 * The simulated agents speak the async wire format: `POST /api/endpoints/edge/async` with the
 * agent headers, `commandTimestamp`, and Capstan's `capstan: {seq, acks}` cursor.
 * Without --target it starts Capstan's embedded default as a child process (Redis from REDIS_URL,
 * default redis://127.0.0.1:6379) on a free port with a temporary data directory.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pool } from '../../shared/concurrency';
import { api } from '../helpers/http';
import { adminToken, startBenchServer, type BenchServer } from '../helpers/server';
import { waitFor } from '../helpers/processes';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '15000' },
    concurrency: { type: 'string', default: '32' },
    agents: { type: 'string', default: '64' },
    target: { type: 'string' },
    username: { type: 'string', default: 'admin' },
    password: { type: 'string', default: 'bench-password-123' },
  },
});
const COUNT = Number(args.count);
const CONCURRENCY = Number(args.concurrency);
const AGENTS = Number(args.agents);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** One simulated agent exchange: acks what it ran, reports its cursor, receives the next commands. */
async function checkIn(base: string, id: number, seq: number, acks: unknown[]) {
  return api(base, 'POST', '/api/endpoints/edge/async', {
    headers: { 'X-PortainerAgent-EdgeID': `bench-edge-${id}`, 'Portainer-Agent': '2.19.0', 'Portainer-Agent-Platform': '1' },
    body: { endpointId: id, commandTimestamp: '2000-01-01T00:00:00Z', capstan: { seq, acks } },
  });
}

async function main() {
  let server: BenchServer | undefined;
  let base = args.target;
  const namespace = `bench${Date.now().toString(36)}`;
  if (!base) {
    server = await startBenchServer({ CAPSTAN_NAMESPACE: namespace, REDIS_URL, CAPSTAN_PUBLIC_URL: 'https://capstan.example.com:9443' });
    base = server.base;
  }
  try {
    const token = await adminToken(base, args.username!, args.password!);

    const runId = Date.now().toString(36);
    const ids: number[] = new Array(COUNT);
    let t0 = process.hrtime.bigint();
    await pool(ids, CONCURRENCY, async (_, i) => {
      const res = await api(base!, 'POST', '/api/endpoints', {
        token, body: { Name: `async-${runId}-${i}`, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', EdgeAsync: true },
      });
      if (res.status !== 200) throw new Error(`creating environment ${i}: ${res.status} ${res.text}`);
      ids[i] = res.body.Id;
      if (i % 1000 === 999) process.stdout.write(`\r  created ${i + 1}/${COUNT}`);
    });
    process.stdout.write('\n');
    console.log(`\nCapstan command fan-out benchmark against ${base}`);
    console.log(`  created ${COUNT} async Edge environments in ${seconds(t0).toFixed(1)} s`);

    t0 = process.hrtime.bigint();
    const queued = await api(base, 'POST', '/api/commands', {
      token, body: { EnvironmentIds: ids, Command: { Type: 'container', ContainerName: 'web', ContainerOperation: 'restart' } },
    });
    if (queued.status !== 202) throw new Error(`POST /api/commands: ${queued.status} ${queued.text}`);
    const answered = seconds(t0);
    const batchUrl = `/api/commands/batches/${queued.body.BatchId}`;
    console.log(`  POST /api/commands (${COUNT} environments) answered 202 in ${(answered * 1000).toFixed(0)} ms${queued.body.Deferred ? ' (Deferred: Redis unreachable)' : ''}`);
    await waitFor(async () => (await api(base!, 'GET', batchUrl, { token })).body.Enqueued === COUNT, 600_000, 'every command in its delivery queue');
    console.log(`  all ${COUNT} commands in their delivery queues after ${seconds(t0).toFixed(2)} s`);

    // Simulated agents: each checks in, receives its command, checks in again acknowledging it.
    const probe = await checkIn(base, ids[0], 0, []);
    if (probe.status === 404 && !/edge\/async/.test(probe.text) && probe.body?.message === 'Not found') {
      console.log('  the async check-in route (POST /api/endpoints/edge/async) is not served by this build: agent part skipped');
      process.exitCode = 2;
      return;
    }
    let errors = 0;
    const t1 = process.hrtime.bigint();
    await pool(ids, AGENTS, async (id) => {
      let seq = 0;
      let acks: unknown[] = [];
      for (let round = 0; round < 5; round++) {
        const res = await checkIn(base!, id, seq, acks);
        if (res.status !== 200) {
          errors++;
          return;
        }
        const cmds = (res.body?.commands ?? []) as { seq: number }[];
        if (!cmds.length && !acks.length) return;
        const finishedAt = Math.floor(Date.now() / 1000);
        acks = cmds.map((c) => ({ seq: c.seq, status: 'succeeded', finishedAt }));
        seq = cmds.length ? Math.max(seq, ...cmds.map((c) => c.seq)) : seq;
        if (!cmds.length) return;
      }
    });
    const exchanged = seconds(t1);
    await waitFor(async () => (await api(base!, 'GET', batchUrl, { token })).body.Counts?.succeeded === COUNT, 120_000, 'every command acknowledged')
      .catch(async (err) => {
        console.log(`  batch: ${JSON.stringify((await api(base!, 'GET', batchUrl, { token })).body)}`);
        throw err;
      });
    console.log(`  simulated agents (${AGENTS} at a time) exchanged in ${exchanged.toFixed(2)} s (${errors} errors)`);
    console.log(`  all ${COUNT} commands acknowledged ${seconds(t0).toFixed(2)} s after queueing (${seconds(t1).toFixed(2)} s after the agents started)`);
    if (errors) process.exitCode = 1;
  } finally {
    await server?.process.kill();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
    if (server) await dropKeys(namespace).catch(() => undefined);
  }
}

/** Removes the bench server's Redis keys (its delivery queues). */
async function dropKeys(namespace: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
