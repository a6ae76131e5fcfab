import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { dockerCall } from '../docker';
import { checkDockerPath, executeCommand, RESULT_MAX_BYTES } from './commands';
import { Journal } from './journal';
import { CommandRunner } from './runner';
import type { AsyncCommand } from './wire';

const SOCKET = '/var/run/docker.sock';
const DOCKER_HOST = `unix://${SOCKET}`;
const IMAGE = process.env.CAPSTAN_TEST_IMAGE ?? 'capstan-test/busybox:latest';
const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' || !fs.existsSync(SOCKET) ? describe.skip : describe;
const log = pino({ level: 'silent' });

let seq = 0;
const cmd = (type: string, value: unknown, extra: Partial<AsyncCommand> = {}): AsyncCommand =>
  ({ id: 100 + ++seq, seq, type, endpointID: 7, timestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, seq)).toISOString().replace('.000', ''), op: '', path: '', value, ...extra });

describe('async command validation', () => {
  it('a dockerRequest path must be absolute and must not climb', () => {
    expect(checkDockerPath('/v1.43/containers/json')).toBe('/v1.43/containers/json');
    for (const bad of ['containers/json', '/containers/../../etc/passwd', '/%2e%2e/x', '/a/..%2f..%2fb', '/x?all=1', '/./info']) {
      expect(() => checkDockerPath(bad)).toThrow();
    }
  });

  it('refuses what it cannot run without touching the engine', async () => {
    const opts = { dockerHost: 'unix:///nonexistent/docker.sock' };
    expect(await executeCommand(cmd('edgeStack', { ID: 1 }), opts)).toEqual({ ok: false, error: 'unsupported command type edgeStack' });
    expect(await executeCommand(cmd('container', { ContainerName: 'x', ContainerOperation: 'pause' }), opts)).toEqual({ ok: false, error: 'unsupported container operation "pause"' });
    expect(await executeCommand(cmd('dockerRequest', { Method: 'GET', Path: '/../x' }), opts)).toEqual({ ok: false, error: 'Path must not contain "." or ".." segments' });
    expect((await executeCommand(cmd('volume', { VolumeName: 'v', VolumeOperation: 'delete' }), opts)).error).toMatch(/^cannot reach the Docker engine at unix:\/\/\/nonexistent/);
  });
});

withDocker('async commands against the local engine', () => {
  const run = randomUUID().slice(0, 8);
  const name = `capstan-async-${run}`;
  const volume = `capstan-async-${run}`;
  let dataPath: string;

  beforeAll(() => (dataPath = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-async-cmd-'))));
  afterAll(async () => {
    await dockerCall(DOCKER_HOST, { method: 'DELETE', path: `/containers/${name}?force=true&v=true` });
    await dockerCall(DOCKER_HOST, { method: 'DELETE', path: `/volumes/${volume}?force=true` });
    fs.rmSync(dataPath, { recursive: true, force: true });
  });

  it('runs in array order, goes on after a failure, skips a stop-on-failure chain, and acks each', async () => {
    const journal = Journal.open(dataPath, 7);
    const order: number[] = [];
    const runner = new CommandRunner(journal, (c) => {
      order.push(c.seq!);
      return executeCommand(c, { dockerHost: DOCKER_HOST });
    }, log);
    const commands = [
      cmd('dockerRequest', { Method: 'POST', Path: '/containers/create', Query: { name }, Body: { Image: IMAGE, Cmd: ['sleep', '300'], StopTimeout: 1, Labels: { big: 'x'.repeat(5000) } } }),
      cmd('container', { ContainerName: name, ContainerOperation: 'start' }),
      cmd('container', { containername: name, containeroperation: 'start' }), // already running: 304, fine; field names case-insensitive
      cmd('container', { ContainerName: `${name}-missing`, ContainerOperation: 'stop' }),
      cmd('container', { ContainerName: name, ContainerOperation: 'kill' }, { stopOnFailure: true }),
      cmd('dockerRequest', { Method: 'DELETE', Path: `/containers/${name}`, Query: { force: true } }, { stopOnFailure: true }),
      cmd('dockerRequest', { Method: 'GET', Path: `/containers/${name}/json` }),
      cmd('container', { ContainerName: name, ContainerOperation: 'restart' }),
      cmd('container', { ContainerName: name, ContainerOperation: 'kill' }),
      cmd('container', { ContainerName: name, ContainerOperation: 'delete', ContainerRemoveOptions: { Force: true, RemoveVolumes: true } }),
      cmd('dockerRequest', { Method: 'GET', Path: `/containers/${name}/json` }),
      cmd('dockerRequest', { Method: 'POST', Path: '/volumes/create', Body: { Name: volume } }),
      cmd('volume', { VolumeName: volume, VolumeOperation: 'delete', ForceRemove: false }),
      cmd('image', { ImageName: `capstan-test/absent-${run}:latest`, ImageOperation: 'delete' }),
      cmd('edgeJob', { ID: 3 }),
    ];
    const first = commands[0].seq!;
    expect(await runner.run(commands)).toBe(commands.length);

    // Skipped commands never reach the executor; everything else runs in array order.
    const skipped = [first + 4, first + 5];
    expect(order).toEqual(commands.map((c) => c.seq!).filter((s) => !skipped.includes(s)));
    const acks = journal.pendingAcks;
    expect(acks.map((a) => a.seq)).toEqual(commands.map((c) => c.seq));
    expect(acks.map((a) => a.status)).toEqual([
      'succeeded', 'succeeded', 'succeeded', 'failed', 'failed', 'failed', 'succeeded',
      'succeeded', 'succeeded', 'succeeded', 'failed', 'succeeded', 'succeeded', 'failed', 'failed',
    ]);
    expect(acks[0].result).toMatchObject({ status: 201, body: { Id: expect.any(String) } });
    expect(acks[3].error).toBe(`No such container: ${name}-missing`);
    expect(acks[4].error).toBe(`not run: command ${first + 3} failed and this command was queued stop-on-failure`);
    expect(acks[5].error).toBe(`not run: command ${first + 4} failed and this command was queued stop-on-failure`);
    // The inspect reply is over 4 KiB (the big label): kept as text, cut.
    const inspect = acks[6].result as { status: number; body: string; truncated: boolean };
    expect(inspect.status).toBe(200);
    expect(inspect.truncated).toBe(true);
    expect(Buffer.byteLength(inspect.body)).toBeLessThanOrEqual(RESULT_MAX_BYTES);
    expect(inspect.body.startsWith('{')).toBe(true);
    expect(acks[10]).toMatchObject({ status: 'failed', error: `No such container: ${name}`, result: { status: 404, body: { message: `No such container: ${name}` } } });
    expect(acks[13].error).toMatch(/No such image/);
    expect(acks[14].error).toBe('unsupported command type edgeJob');
    expect(journal.lastSeq).toBe(commands[commands.length - 1].seq);
    expect(journal.commandTimestamp).toBe(commands[commands.length - 1].timestamp);

    // What a user sees on the host: the container and the volume are gone.
    expect((await dockerCall(DOCKER_HOST, { method: 'GET', path: `/containers/${name}/json` })).status).toBe(404);
    expect((await dockerCall(DOCKER_HOST, { method: 'GET', path: `/volumes/${volume}` })).status).toBe(404);

    // Delivered again (the server did not see the acks yet): nothing runs twice.
    order.length = 0;
    expect(await runner.run(commands)).toBe(0);
    expect(order).toEqual([]);
  }, 60_000);
});
