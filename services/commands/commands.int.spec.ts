import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { call, type AgentCommand } from '../../shared/contracts';
import { api } from '../../test/helpers/http';
import { startTestNode, tempDataDir, type TestNode } from '../../test/helpers/node';
import { waitFor } from '../../test/helpers/processes';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };

jest.setTimeout(120_000);

/** Deletes every Redis key of a node's commands service: Redis "came back empty" for it. */
async function wipe(redis: Redis, n: TestNode): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${n.config.namespace}:commands:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Drops the commands service's connection (as a Redis restart does); ioredis reconnects and the service reconciles. */
async function killConnection(redis: Redis, n: TestNode): Promise<void> {
  const list = (await redis.client('LIST')) as string;
  const line = list.split('\n').find((l) => l.includes(` name=capstan-commands:${n.config.nodeID} `));
  if (!line) throw new Error('commands connection not found');
  await redis.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]);
}

describe('commands: queued through the API, delivered in order, acknowledged', () => {
  const dataDir = tempDataDir('capstan-cmd-');
  let n: TestNode;
  let token: string;
  let redis: Redis;
  const pending = (id: number, afterSeq = 0, limit?: number) => call(n.node.broker, 'commands.pending', { id, afterSeq, ...(limit ? { limit } : {}) });
  const createAsync = async (name: string, async = true) => {
    const res = await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: name, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', EdgeAsync: async } });
    expect(res.status).toBe(200);
    return res.body.Id as number;
  };
  const seqs = (cmds: AgentCommand[]) => cmds.map((c) => c.seq);

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    n = await startTestNode({ dataDir, redisUrl: REDIS_URL });
    await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN });
    token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
  });
  afterAll(async () => {
    if (n) await wipe(redis, n);
    await n?.stop();
    redis.disconnect();
  });

  it('queues for one environment, serves pending in seq order, records delivery and acknowledgements', async () => {
    const id = await createAsync('site-1');
    const res = await api(n.url, 'POST', `/api/endpoints/${id}/commands`, {
      token,
      body: {
        Commands: [
          { Type: 'container', ContainerName: 'web', ContainerOperation: 'restart' },
          { Type: 'image', ImageName: 'busybox:1.36', ImageOperation: 'delete', ImageRemoveOptions: { Force: true } },
          { Type: 'dockerRequest', Method: 'POST', Path: '/containers/web/kill', Query: { signal: 'SIGHUP' }, Body: { any: ['json'] } },
          { Type: 'volume', VolumeName: 'data', VolumeOperation: 'delete', ForceRemove: true },
        ],
        StopOnFailure: true,
      },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ Queued: 4, Deferred: false, BatchId: expect.any(String) });
    expect(res.body.Commands.map((c: { Id: string; Seq: number; Status: string }) => [c.Id, c.Seq, c.Status])).toEqual([1, 2, 3, 4].map((s) => [`${id}:${s}`, s, 'queued']));

    const all = await pending(id);
    expect(all.more).toBe(false);
    expect(all.commands[0]).toEqual({
      id: 1, seq: 1, type: 'container', endpointID: id, timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), op: '', path: '',
      value: { ContainerName: 'web', ContainerOperation: 'restart', ContainerStartOptions: { CheckpointID: '', CheckpointDir: '' }, ContainerRemoveOptions: { RemoveVolumes: false, RemoveLinks: false, Force: false } },
      stopOnFailure: true,
    });
    expect(all.commands.map((c) => c.type)).toEqual(['container', 'image', 'dockerRequest', 'volume']);
    expect(all.commands[1].value).toEqual({ ImageName: 'busybox:1.36', ImageOperation: 'delete', ImageRemoveOptions: { Force: true, PruneChildren: false } });
    expect(all.commands[2].value).toEqual({ Method: 'POST', Path: '/containers/web/kill', Query: { signal: 'SIGHUP' }, Body: { any: ['json'] } });
    expect(all.commands[3].value).toEqual({ VolumeName: 'data', ForceRemove: true, VolumeOperation: 'delete' });
    expect(seqs((await pending(id, 2)).commands)).toEqual([3, 4]);
    expect(await pending(id, 0, 1)).toMatchObject({ more: true, commands: [{ seq: 1 }] });

    expect(await call(n.node.broker, 'commands.delivered', { id, seqs: [1, 2, 3] })).toEqual({ ok: true });
    await waitFor(async () => (await api(n.url, 'GET', `/api/endpoints/${id}/commands?status=delivered`, { token })).headers['x-total-count'] === '3', 5000, 'deliveries recorded');

    const acked = await call(n.node.broker, 'commands.ack', {
      id, acks: [{ seq: 1, status: 'succeeded', finishedAt: Math.floor(Date.now() / 1000) }, { seq: 2, status: 'failed', error: 'image is being used by a running container' }],
    });
    expect(acked).toEqual({ finished: [1, 2] });
    // Acknowledged commands leave the delivery queue at once; the rest stay, delivered or not.
    expect(seqs((await pending(id)).commands)).toEqual([3, 4]);
    // An ack for an unknown seq, or a second ack, changes nothing.
    expect(await call(n.node.broker, 'commands.ack', { id, acks: [{ seq: 77, status: 'succeeded' }, { seq: 2, status: 'succeeded' }] })).toEqual({ finished: [2] });

    const list = await api(n.url, 'GET', `/api/endpoints/${id}/commands`, { token });
    expect(list.status).toBe(200);
    expect(list.headers['x-total-count']).toBe('4');
    expect(list.body.map((c: { Status: string }) => c.Status)).toEqual(['succeeded', 'failed', 'delivered', 'queued']);
    const failed = await api(n.url, 'GET', `/api/endpoints/${id}/commands/2`, { token });
    expect(failed.body).toMatchObject({ Id: `${id}:2`, EnvironmentId: id, Seq: 2, Type: 'image', Status: 'failed', Error: 'image is being used by a running container', StopOnFailure: true });
    expect(failed.body.FinishedAt).toEqual(expect.any(Number));
    const paged = await api(n.url, 'GET', `/api/endpoints/${id}/commands?start=2&limit=1`, { token });
    expect(paged.body.map((c: { Seq: number }) => c.Seq)).toEqual([3]);

    // The agent's cursor: everything up to seq 3 was processed; 3 had no ack of its own.
    expect(await call(n.node.broker, 'commands.ack', { id, acks: [], watermarkSeq: 3 })).toEqual({ finished: [3] });
    const batch = await api(n.url, 'GET', `/api/commands/batches/${res.body.BatchId}`, { token });
    expect(batch.body).toMatchObject({ Total: 4, Environments: 1, Enqueued: 4, Counts: { queued: 1, delivered: 0, succeeded: 2, failed: 1 } });
  });

  it('acknowledges Portainer agents by their timestamp watermark', async () => {
    const id = await createAsync('portainer-agent');
    await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [1, 2, 3].map((i) => ({ Type: 'container', ContainerName: `c${i}`, ContainerOperation: 'stop' })) } });
    const first = await pending(id);
    await call(n.node.broker, 'commands.delivered', { id, seqs: seqs(first.commands).slice(0, 2) });
    await waitFor(async () => (await call(n.node.broker, 'state.listCommands', { id, status: 'delivered' })).total === 2, 5000, 'deliveries recorded');
    // The agent ran the two it received and sends the timestamp of the last one.
    expect(await call(n.node.broker, 'commands.ackUntilTimestamp', { id, timestamp: first.commands[1].timestamp })).toEqual({ finished: [1, 2] });
    expect(seqs((await pending(id)).commands)).toEqual([3]);
    // The initial watermark of a (restarted) agent acknowledges nothing.
    expect(await call(n.node.broker, 'commands.ackUntilTimestamp', { id, timestamp: '2000-01-01T00:00:00Z' })).toEqual({ finished: [] });
    await expect(call(n.node.broker, 'commands.ackUntilTimestamp', { id, timestamp: 'yesterday' })).rejects.toMatchObject({ code: 400 });
  });

  it('rebuilds the delivery queues from the ledger when Redis comes back empty', async () => {
    const [a, b] = [await createAsync('wiped-a'), await createAsync('wiped-b')];
    for (const id of [a, b]) {
      await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [1, 2, 3].map((i) => ({ Type: 'volume', VolumeName: `v${i}`, VolumeOperation: 'delete' })) } });
    }
    await call(n.node.broker, 'commands.delivered', { id: a, seqs: [1] });
    await call(n.node.broker, 'commands.ack', { id: a, acks: [{ seq: 1, status: 'succeeded' }] });
    expect(seqs((await pending(a)).commands)).toEqual([2, 3]);

    expect(await wipe(redis, n)).toBeGreaterThan(0);
    // An empty Redis lacks the reconciled marker: nothing is handed out (older commands could be missing) until it is rebuilt.
    await expect(pending(a)).rejects.toMatchObject({ code: 503, type: 'COMMANDS_UNAVAILABLE' });
    // The connection drops and comes back, as after a Redis restart: the service reconciles by itself.
    await killConnection(redis, n);
    await waitFor(async () => seqs((await pending(b)).commands).join() === '1,2,3', 10_000, 'reconciliation');
    expect(seqs((await pending(a)).commands)).toEqual([2, 3]);
    // Idempotent: running it again adds nothing twice.
    await call(n.node.broker, 'commands.reconcile', {});
    expect(seqs((await pending(a)).commands)).toEqual([2, 3]);
  });

  it('never lets a command overtake an older one that is not in the queue yet, and skips only finished ones', async () => {
    const id = await createAsync('contiguous');
    await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [1, 2, 3].map((i) => ({ Type: 'volume', VolumeName: `c${i}`, VolumeOperation: 'delete' })) } });
    const strict = (afterSeq: number) => call(n.node.broker, 'commands.pending', { id, afterSeq, contiguous: true });
    // Seq 1 not (yet) in its queue, as while a fan-out is still adding it: 2 and 3 must wait.
    const queue = new Queue(`cmd-${id}`, { prefix: `${n.config.namespace}:commands`, connection: redis });
    await (await queue.getJob('s1'))!.remove();
    expect((await strict(0)).commands).toEqual([]);
    await waitFor(async () => seqs((await strict(0)).commands).join() === '1,2,3', 10_000, 'seq 1 back in its queue');
    // A cursor behind finished commands (an agent with a new journal) is not a gap.
    await call(n.node.broker, 'commands.ack', { id, acks: [{ seq: 1, status: 'failed', error: 'x' }] });
    expect(seqs((await strict(0)).commands)).toEqual([2, 3]);
    // A hole inside the run ends it there.
    await (await queue.getJob('s3'))!.remove();
    await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [{ Type: 'volume', VolumeName: 'c4', VolumeOperation: 'delete' }] } });
    expect(await strict(1)).toMatchObject({ commands: [expect.objectContaining({ seq: 2 })], more: true });
    await queue.close();
  });

  it('fans one command out to 1,000 environments and counts it through to acknowledgement', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 1000; i += 50) {
      ids.push(...await Promise.all(Array.from({ length: 50 }, (_, j) => createAsync(`fleet-${i + j}`))));
    }
    const res = await api(n.url, 'POST', '/api/commands', {
      token, body: { EnvironmentIds: ids, Command: { Type: 'dockerRequest', Method: 'POST', Path: '/images/prune', Query: { filters: '{"dangling":["true"]}' } } },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ BatchId: expect.any(String), Queued: 1000, Deferred: false });
    const batchUrl = `/api/commands/batches/${res.body.BatchId}`;
    await waitFor(async () => (await api(n.url, 'GET', batchUrl, { token })).body.Enqueued === 1000, 30_000, 'the fan-out to finish');
    for (const id of [ids[0], ids[500], ids[999]]) expect((await pending(id)).commands).toMatchObject([{ type: 'dockerRequest', endpointID: id, value: { Path: '/images/prune' } }]);

    await Promise.all(ids.map(async (id) => {
      const p = await pending(id);
      await call(n.node.broker, 'commands.ack', { id, acks: p.commands.map((c) => ({ seq: c.seq, status: 'succeeded' as const })) });
    }));
    const batch = await api(n.url, 'GET', batchUrl, { token });
    expect(batch.body).toMatchObject({ Environments: 1000, Total: 1000, Counts: { queued: 0, delivered: 0, succeeded: 1000, failed: 0 } });
    expect((await pending(ids[3])).commands).toEqual([]);
  });
});

describe('commands: persisted state survives a restart of Capstan and of Redis', () => {
  it('delivers what was queued before the restart, in order, from a Redis that knows nothing of it', async () => {
    const dataDir = tempDataDir('capstan-cmd-restart-');
    const redis = new Redis(REDIS_URL);
    let n = await startTestNode({ dataDir, redisUrl: REDIS_URL });
    try {
      await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN });
      let token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
      const id = (await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: 'offline-for-days', EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', EdgeAsync: true } })).body.Id;
      for (const name of ['a', 'b', 'c']) {
        expect((await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [{ Type: 'container', ContainerName: name, ContainerOperation: 'start' }] } })).status).toBe(201);
      }
      await wipe(redis, n);
      await n.stop({ keepData: true });
      // Same data directory, a new namespace: its Redis keys are empty.
      n = await startTestNode({ dataDir, redisUrl: REDIS_URL });
      const p = await waitFor(async () => {
        const r = await call(n.node.broker, 'commands.pending', { id, afterSeq: 0 });
        return r.commands.length === 3 && r;
      }, 10_000, 'pending commands after the restart');
      expect(p.commands.map((c) => [c.seq, (c.value as { ContainerName: string }).ContainerName])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
      token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
      const next = await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [{ Type: 'container', ContainerName: 'd', ContainerOperation: 'start' }] } });
      expect(next.body.Commands[0].Seq).toBe(4);
    } finally {
      await wipe(redis, n).catch(() => 0);
      await n.stop();
      redis.disconnect();
    }
  });

  it('persists and answers while Redis is unreachable', async () => {
    const n = await startTestNode({ redisUrl: 'redis://127.0.0.1:1' });
    try {
      await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN });
      const token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
      const id = (await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: 'no-redis', EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', EdgeAsync: true } })).body.Id;
      const res = await api(n.url, 'POST', `/api/endpoints/${id}/commands`, { token, body: { Commands: [{ Type: 'container', ContainerName: 'x', ContainerOperation: 'kill' }] } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ Deferred: true, Queued: 1 });
      const fan = await api(n.url, 'POST', '/api/commands', { token, body: { EnvironmentIds: [id], Command: { Type: 'container', ContainerName: 'y', ContainerOperation: 'kill' } } });
      expect(fan.status).toBe(202);
      expect((await api(n.url, 'GET', `/api/endpoints/${id}/commands`, { token })).body.map((c: { Seq: number; Status: string }) => [c.Seq, c.Status])).toEqual([[1, 'queued'], [2, 'queued']]);
      await expect(call(n.node.broker, 'commands.pending', { id })).rejects.toMatchObject({ code: 503, type: 'COMMANDS_UNAVAILABLE' });
      const batch = await api(n.url, 'GET', `/api/commands/batches/${res.body.BatchId}`, { token });
      expect(batch.body).toMatchObject({ Total: 1, Enqueued: null });
    } finally {
      await n.stop();
    }
  });
});
