import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'moleculer';
import type { BatchCommandsResult, CommandRecord } from '../../shared/contracts';
import { uniqueNamespace } from '../../test/helpers/ids';
import { waitFor } from '../../test/helpers/processes';
import { Fanout } from './fanout';
import { DeliveryQueues } from './queues';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = { info: jest.fn(), warn: jest.fn(), error: jest.fn(), debug: jest.fn() } as unknown as Logger;

jest.setTimeout(60_000);

/** A batch of one command for environments 1..total, as state.batchCommands pages it. */
function fakeBatch(batchId: string, total: number) {
  return async (_id: string, start: number, limit: number): Promise<BatchCommandsResult> => {
    const end = Math.min(total, start + limit);
    const commands: CommandRecord[] = [];
    for (let i = start; i < end; i++) {
      commands.push({
        EnvironmentId: i + 1, Seq: 1, BatchId: batchId, Type: 'container', Value: { ContainerName: 'web', ContainerOperation: 'stop' },
        StopOnFailure: false, Status: 'queued', CreatedAt: 1, Timestamp: '2030-01-01T00:00:00.000Z', CreatedBy: 1,
      });
    }
    return { commands, total, next: end };
  };
}

describe('fan-out worker', () => {
  const prefix = `${uniqueNamespace('fanout')}:commands`;
  const conns: Redis[] = [];
  const connect = (opts: RedisOptions) => {
    const r = new Redis(REDIS_URL, opts);
    conns.push(r);
    return r;
  };

  afterAll(async () => {
    const redis = connect({});
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    for (const c of conns) c.disconnect();
  });

  it('resumes from its progress in another worker when the one running it dies', async () => {
    const batchId = '11111111-2222-4333-8444-555555555555';
    const TOTAL = 2500;
    const read = fakeBatch(batchId, TOTAL);

    // Worker A reads one page, records its progress, then hangs on the next read, as a process
    // that died mid-way: it is closed without finishing or releasing the job.
    const startsA: number[] = [];
    const redisA = connect({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
    const queuesA = new DeliveryQueues(redisA, { prefix });
    const a = new Fanout({
      prefix, redis: redisA, workerRedis: connect({ maxRetriesPerRequest: null }), queues: queuesA, log, onGaveUp: jest.fn(),
      lockDurationMs: 1000, stalledIntervalMs: 500,
      readBatch: (id, start, limit) => {
        startsA.push(start);
        return startsA.length === 1 ? read(id, start, limit) : new Promise<never>(() => undefined);
      },
    });
    await waitFor(async () => redisA.status === 'ready', 5000, 'redis');
    a.start();
    await a.add(batchId, TOTAL);
    await waitFor(async () => startsA.length === 2, 10_000, 'worker A to start its second page');
    await (a as unknown as { worker: { close(force: boolean): Promise<void> } }).worker.close(true);
    expect(await queuesA.getEnqueued(batchId)).toBe(1000);

    const startsB: number[] = [];
    const redisB = connect({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
    const queuesB = new DeliveryQueues(redisB, { prefix, maxOpen: 100 });
    const b = new Fanout({
      prefix, redis: redisB, workerRedis: connect({ maxRetriesPerRequest: null }), queues: queuesB, log, onGaveUp: jest.fn(),
      lockDurationMs: 1000, stalledIntervalMs: 500,
      readBatch: (id, start, limit) => {
        startsB.push(start);
        return read(id, start, limit);
      },
    });
    await waitFor(async () => redisB.status === 'ready', 5000, 'redis');
    b.start();
    await waitFor(async () => (await queuesB.getEnqueued(batchId)) === TOTAL, 20_000, 'worker B to finish the fan-out');
    expect(startsB[0]).toBe(1000);
    for (const env of [1, 1000, 1001, TOTAL]) {
      expect(await queuesB.pending(env, 0, 10, 1e6)).toEqual({ more: false, jobs: [expect.objectContaining({ seq: 1, type: 'container' })] });
    }
    // The LRU kept its bound while 1,500 environments went through it.
    expect(queuesB.size).toBeLessThanOrEqual(100);
    const job = await b.queue.getJob(batchId);
    expect(await job!.getState()).toBe('completed');
    await b.stop();
    await queuesB.close();
    await a.queue.close();
    await queuesA.close();
  });
});
