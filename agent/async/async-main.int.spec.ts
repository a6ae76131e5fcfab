import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { encodeEdgeKey } from '../../shared/crypto';
import type { AsyncRequestBody } from './wire';

const MAIN = path.resolve(__dirname, '../../dist/agent/main.js');
const SOCKET = '/var/run/docker.sock';
const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' || !fs.existsSync(SOCKET) ? describe.skip : describe;

withDocker('the agent program in async mode (EDGE_ASYNC=1)', () => {
  let server: http.Server;
  let dataPath: string;
  let child: ChildProcess | undefined;
  const seen: { url: string; gzip: boolean; body: AsyncRequestBody }[] = [];

  beforeAll(async () => {
    dataPath = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-async-main-'));
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const gzip = req.headers['content-encoding'] === 'gzip';
        const raw = Buffer.concat(chunks);
        seen.push({ url: req.url ?? '', gzip, body: JSON.parse((gzip ? zlib.gunzipSync(raw) : raw).toString('utf8')) });
        const commands = seen.length === 1
          ? [{ id: 1, seq: 1, type: 'dockerRequest', endpointID: 5, timestamp: '2025-06-01T00:00:00Z', value: { Method: 'GET', Path: '/_ping' } }]
          : [];
        res.writeHead(200, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ pingInterval: 60e9, snapshotInterval: 60e9, commandInterval: 60e9, endpointID: 5, commands, needFullSnapshot: false }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dataPath, { recursive: true, force: true });
  });

  it('sends a real snapshot, runs a command, acks it, never polls, and exits cleanly on SIGTERM', async () => {
    const { port } = server.address() as AddressInfo;
    const key = encodeEdgeKey({ apiUrl: `http://127.0.0.1:${port}`, tunnelAddr: '127.0.0.1:9', fingerprint: 'A'.repeat(43) + '=', endpointId: 5 });
    const proc = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', EDGE: '1', EDGE_ASYNC: '1', EDGE_KEY: key, EDGE_ID: 'async-host', DATA_PATH: dataPath, LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let output = '';
    proc.stdout!.on('data', (c) => (output += c));
    proc.stderr!.on('data', (c) => (output += c));
    const until = Date.now() + 15_000;
    while (seen.length < 2 && Date.now() < until && proc.exitCode === null) await new Promise((r) => setTimeout(r, 25));
    expect(output).toBe('');
    expect(seen.length).toBeGreaterThanOrEqual(2);

    expect(seen.every((s) => s.url === '/api/endpoints/edge/async')).toBe(true);
    const [first, second] = seen;
    expect(first.gzip).toBe(true);
    expect(first.body.snapshot).toHaveProperty('docker.DockerVersion', expect.stringMatching(/\d+\.\d+/));
    expect(second.body).toMatchObject({ endpointId: 5, commandTimestamp: '2025-06-01T00:00:00Z' });
    expect(second.body.capstan).toEqual({ seq: 1, acks: [{ seq: 1, status: 'succeeded', result: { status: 200, body: 'OK' }, finishedAt: expect.any(Number) }] });

    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const t0 = Date.now();
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5500);
    expect(JSON.parse(fs.readFileSync(path.join(dataPath, 'capstan-async.json'), 'utf8'))).toMatchObject({ endpointId: 5, lastSeq: 1, pendingAcks: [] });
  }, 30_000);
});
