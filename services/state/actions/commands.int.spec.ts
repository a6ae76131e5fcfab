import fs from 'node:fs';
import type { ServiceBroker } from 'moleculer';
import { loadConfig, type Config } from '../../../shared/config';
import { call, type CommandInput, type CommandRecord } from '../../../shared/contracts';
import { createBroker } from '../../../shared/moleculer';
import { tempDataDir, uniqueNamespace } from '../../../test/helpers/ids';
import { stateService } from '..';

jest.setTimeout(60_000);

function configFor(dataDir: string): Config {
  return loadConfig({}, { dataDir, namespace: uniqueNamespace('cmdstate'), services: ['state'], logLevel: 'warn', tunnelPort: 8000 });
}

async function startState(config: Config): Promise<ServiceBroker> {
  const broker = createBroker(config);
  broker.createService(stateService(config));
  await broker.start();
  return broker;
}

const stop: CommandInput = { type: 'container', value: { ContainerName: 'web', ContainerOperation: 'stop' } };
const rm: CommandInput = { type: 'image', value: { ImageName: 'busybox:latest', ImageOperation: 'delete' } };

describe('state: the command ledger', () => {
  let dataDir: string;
  let broker: ServiceBroker;
  let config: Config;
  const createEnv = async (name: string, async = true, type = 4) => (await call(broker, 'state.createEnvironment', {
    Name: name, EndpointCreationType: type, URL: type === 4 ? 'https://capstan.example.com:9443' : 'tcp://10.0.0.1:2375', ...(async ? { EdgeAsync: true } : {}),
  })).Id;
  const queue = (environmentIds: number[], commands: CommandInput[], stopOnFailure = false) =>
    call(broker, 'state.queueCommands', { environmentIds, commands, stopOnFailure, createdBy: 1 });

  beforeEach(async () => {
    dataDir = tempDataDir();
    config = configFor(dataDir);
    broker = await startState(config);
  });
  afterEach(async () => {
    await broker.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('assigns per-environment seqs in issue order with strictly increasing timestamps, and refuses other environments', async () => {
    const [a, b] = [await createEnv('a'), await createEnv('b')];
    const first = await queue([a, b], [stop, rm], true);
    expect(first.batch).toMatchObject({ Environments: 2, PerEnvironment: 2, Total: 4, Counts: { queued: 4, delivered: 0, succeeded: 0, failed: 0 } });
    expect(first.commands!.map((c) => [c.EnvironmentId, c.Seq, c.Type, c.Status, c.StopOnFailure])).toEqual([
      [a, 1, 'container', 'queued', true], [a, 2, 'image', 'queued', true], [b, 1, 'container', 'queued', true], [b, 2, 'image', 'queued', true],
    ]);
    const second = await queue([b], [stop]);
    expect(second.commands!.map((c) => [c.EnvironmentId, c.Seq])).toEqual([[b, 3]]);
    const all = (await call(broker, 'state.listCommands', { id: b })).items;
    expect(all.map((c) => c.Seq)).toEqual([1, 2, 3]);
    const ts = all.map((c) => Date.parse(c.Timestamp));
    expect(ts[0]).toBeLessThan(ts[1]);
    expect(ts[1]).toBeLessThan(ts[2]);
    expect(all[0].Value).toEqual(stop.value);

    const standard = await createEnv('standard-edge', false);
    const docker = await createEnv('docker', false, 1);
    await expect(queue([a, standard, docker, 9999], [stop])).rejects.toMatchObject({
      code: 400, data: { NotFound: [9999], NotAsync: [standard, docker] },
    });
    await expect(queue([9999], [stop])).rejects.toMatchObject({ code: 404 });
    // Nothing of a refused request was written.
    expect((await call(broker, 'state.listCommands', { id: a })).total).toBe(2);
  });

  it('moves statuses only forward, ignores unknown seqs, keeps batch counters and reports what is final', async () => {
    const a = await createEnv('a');
    const { batch } = await queue([a], [stop, stop, stop]);
    let r = await call(broker, 'state.updateCommands', { updates: [{ id: a, seq: 1, status: 'delivered', at: 100 }, { id: a, seq: 2, status: 'delivered', at: 100 }, { id: a, seq: 99, status: 'succeeded', at: 100 }] });
    expect(r).toEqual({ updated: 2, final: [] });
    r = await call(broker, 'state.updateCommands', {
      updates: [
        { id: a, seq: 1, status: 'succeeded', at: 101, result: { ok: 1 } },
        { id: a, seq: 2, status: 'failed', at: 102, error: 'No such container: web' },
        // Queued → failed directly is fine (an agent may ack without our delivery mark).
        { id: a, seq: 3, status: 'failed', at: 103, error: 'skipped: previous command failed' },
      ],
    });
    expect(r.updated).toBe(3);
    expect(r.final).toEqual([{ id: a, seq: 1 }, { id: a, seq: 2 }, { id: a, seq: 3 }]);
    // Backwards, or a second result: ignored; still reported as final (so its job is removed).
    r = await call(broker, 'state.updateCommands', { updates: [{ id: a, seq: 1, status: 'delivered', at: 200 }, { id: a, seq: 2, status: 'succeeded', at: 200 }] });
    expect(r).toEqual({ updated: 0, final: [{ id: a, seq: 1 }, { id: a, seq: 2 }] });
    const one = await call(broker, 'state.getCommand', { id: a, seq: 1 });
    expect(one).toMatchObject({ Status: 'succeeded', DeliveredAt: 100, FinishedAt: 101, Result: { ok: 1 } });
    expect(await call(broker, 'state.getCommand', { id: a, seq: 2 })).toMatchObject({ Status: 'failed', Error: 'No such container: web' });
    expect(await call(broker, 'state.getCommandBatch', { batchId: batch.BatchId })).toMatchObject({ Counts: { queued: 0, delivered: 0, succeeded: 1, failed: 2 } });
    await expect(call(broker, 'state.getCommand', { id: a, seq: 4 })).rejects.toMatchObject({ code: 404 });
    expect((await call(broker, 'state.pendingCommands', {})).commands).toEqual([]);
  });

  it('finishes delivered commands up to a watermark (timestamp or seq), never queued ones', async () => {
    const [a, b] = [await createEnv('a'), await createEnv('b')];
    const { commands } = await queue([a, b], [stop, stop, stop]);
    const ofA = commands!.filter((c) => c.EnvironmentId === a);
    await call(broker, 'state.updateCommands', { updates: [1, 2].map((seq) => ({ id: a, seq, status: 'delivered' as const, at: 1 })) });
    // Portainer's watermark: the timestamp of the last command the agent ran (seq 3 is not delivered).
    let r = await call(broker, 'state.updateCommands', { updates: [], watermarks: [{ id: a, timestamp: ofA[2].Timestamp, at: 5 }] });
    expect(r).toEqual({ updated: 2, final: [{ id: a, seq: 1 }, { id: a, seq: 2 }] });
    expect((await call(broker, 'state.getCommand', { id: a, seq: 3 })).Status).toBe('queued');
    // Capstan's cursor on b.
    await call(broker, 'state.updateCommands', { updates: [1, 2, 3].map((seq) => ({ id: b, seq, status: 'delivered' as const, at: 1 })) });
    r = await call(broker, 'state.updateCommands', { updates: [{ id: b, seq: 1, status: 'failed', at: 2, error: 'x' }], watermarks: [{ id: b, seq: 2, at: 5 }] });
    expect(r.final).toEqual([{ id: b, seq: 1 }, { id: b, seq: 2 }]);
    const listed = await call(broker, 'state.listCommands', { id: b });
    expect(listed.items.map((c) => c.Status)).toEqual(['failed', 'succeeded', 'delivered']);
  });

  it('lists by status with paging, pages pending commands over all environments, and reads a batch in order', async () => {
    const envs: number[] = [];
    for (let i = 0; i < 5; i++) envs.push(await createEnv(`e${i}`));
    const { batch } = await queue(envs, [stop, rm]);
    await call(broker, 'state.updateCommands', { updates: [{ id: envs[0], seq: 1, status: 'succeeded', at: 1 }, { id: envs[1], seq: 2, status: 'delivered', at: 1 }] });

    const page = await call(broker, 'state.listCommands', { id: envs[0], start: 1, limit: 5 });
    expect(page).toMatchObject({ total: 2, items: [{ Seq: 2 }] });
    expect(await call(broker, 'state.listCommands', { id: envs[1], status: 'delivered' })).toMatchObject({ total: 1, items: [{ Seq: 2, Status: 'delivered' }] });
    expect((await call(broker, 'state.listCommands', { id: envs[0], status: 'succeeded' })).total).toBe(1);
    await expect(call(broker, 'state.listCommands', { id: 4242 })).rejects.toMatchObject({ code: 404 });

    const seen: CommandRecord[] = [];
    let afterKey: string | undefined;
    let calls = 0;
    do {
      const r = await call(broker, 'state.pendingCommands', afterKey ? { afterKey, limit: 3 } : { limit: 3 });
      seen.push(...r.commands);
      afterKey = r.nextKey ?? undefined;
      calls++;
    } while (afterKey);
    expect(calls).toBeGreaterThan(2);
    expect(seen.map((c) => `${c.EnvironmentId}:${c.Seq}`)).toEqual(envs.flatMap((e) => [1, 2].map((s) => `${e}:${s}`)).filter((k) => k !== `${envs[0]}:1`));

    const b1 = await call(broker, 'state.batchCommands', { batchId: batch.BatchId, start: 0, limit: 4 });
    expect(b1.total).toBe(10);
    expect(b1.next).toBe(4);
    const b2 = await call(broker, 'state.batchCommands', { batchId: batch.BatchId, start: 4, limit: 100 });
    expect([...b1.commands, ...b2.commands].map((c) => [c.EnvironmentId, c.Seq])).toEqual(envs.flatMap((e) => [[e, 1], [e, 2]]));
    expect(b1.commands[0].Status).toBe('succeeded');
  });

  it('fans out to 3,000 environments in one commit and keeps seqs, statuses and counters across a restart', async () => {
    const envs = await Promise.all(Array.from({ length: 3000 }, (_, i) => createEnv(`fan-${i}`)));
    const t0 = Date.now();
    const { batch, commands } = await queue(envs, [stop]);
    const took = Date.now() - t0;
    expect(commands).toBeUndefined();
    expect(batch.Total).toBe(3000);
    expect(took).toBeLessThan(10_000);
    await call(broker, 'state.updateCommands', { updates: [{ id: envs[7], seq: 1, status: 'succeeded', at: 1 }] });

    await broker.stop();
    broker = await startState(config);
    const again = await queue([envs[7], envs[8]], [rm]);
    expect(again.commands!.map((c) => c.Seq)).toEqual([2, 2]);
    expect(await call(broker, 'state.getCommand', { id: envs[7], seq: 1 })).toMatchObject({ Status: 'succeeded' });
    expect(await call(broker, 'state.getCommandBatch', { batchId: batch.BatchId })).toMatchObject({ Counts: { queued: 2999, succeeded: 1 } });
    const read = await call(broker, 'state.batchCommands', { batchId: batch.BatchId, start: 2500, limit: 1000 });
    expect(read.commands.map((c) => c.EnvironmentId)).toEqual(envs.slice(2500));
  });
});
