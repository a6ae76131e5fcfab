import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { applyPatch, deepClone } from 'fast-json-patch';
import pino from 'pino';
import { collectDockerSnapshot, snapshotHash, type DockerGet, type DockerSnapshot } from '../../shared/snapshot';
import { AsyncAgent, type AsyncAgentOptions } from './async-agent';
import { INTERRUPTED_ERROR, JOURNAL_FILE } from './journal';
import type { AsyncCommand, AsyncRequestBody, AsyncResponse } from './wire';

const log = pino({ level: 'silent' });
const MS = 1e6; // nanoseconds per millisecond: the reply speaks Go durations

/** One request as the server endpoint received it. */
interface Seen {
  at: number;
  headers: http.IncomingHttpHeaders;
  gzip: boolean;
  body: AsyncRequestBody;
}
type Reply = { status: number; body: unknown };

/**
 * Stands in for the server's `POST /api/endpoints/edge/async`: records each request and answers
 * with `respond`. By default it keeps a copy of the Docker snapshot the way the wire format says
 * (full replaces it; a patch applies only when its hash matches, else `needFullSnapshot`).
 */
class Endpoint {
  readonly seen: Seen[] = [];
  stored: DockerSnapshot | undefined;
  rejectedPatches = 0;
  respond: (s: Seen, i: number) => Reply = () => this.ok({});
  private server!: http.Server;
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const gzip = req.headers['content-encoding'] === 'gzip';
        const seen: Seen = { at: Date.now(), headers: req.headers, gzip, body: JSON.parse((gzip ? zlib.gunzipSync(raw) : raw).toString('utf8')) };
        expect(req.method).toBe('POST');
        expect(req.url).toBe('/api/endpoints/edge/async');
        this.seen.push(seen);
        const r = this.respond(seen, this.seen.length - 1);
        res.writeHead(r.status, { 'Content-Type': 'application/json' }).end(JSON.stringify(r.body));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A 200 reply after applying the request's snapshot to the stored copy. */
  ok(extra: AsyncResponse, s?: Seen): Reply {
    let needFullSnapshot = false;
    const snap = s?.body.snapshot;
    if (snap && 'docker' in snap) this.stored = snap.docker;
    else if (snap && 'dockerPatch' in snap) {
      if (this.stored && snapshotHash(this.stored) === snap.dockerHash) this.stored = applyPatch(deepClone(this.stored), snap.dockerPatch).newDocument;
      else {
        needFullSnapshot = true;
        this.rejectedPatches++;
      }
    }
    return { status: 200, body: { pingInterval: 0, snapshotInterval: 0, commandInterval: 0, endpointID: 7, needFullSnapshot, ...extra } };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  async waitFor(n: number, timeoutMs = 5000): Promise<Seen[]> {
    const until = Date.now() + timeoutMs;
    while (this.seen.length < n) {
      if (Date.now() > until) throw new Error(`expected ${n} requests, got ${this.seen.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.seen;
  }
}

/** A Docker engine's answers for the snapshot collector; `containers` changes between snapshots. */
function engine() {
  const state = { containers: [] as Record<string, unknown>[] };
  const get: DockerGet = async (p) => {
    if (p === '/info') return { ServerVersion: '27.5.1', NCPU: 4, MemTotal: 8e9, Swarm: { ControlAvailable: false } };
    if (p === '/version') return { Components: [{ Name: 'Engine' }] };
    if (p.startsWith('/containers/json')) return structuredClone(state.containers);
    if (p.startsWith('/containers/')) return { HostConfig: {} };
    if (p === '/images/json') return [{ Id: 'sha256:1' }];
    if (p === '/volumes') return { Volumes: [], Warnings: null };
    if (p === '/networks') return [{ Name: 'host' }];
    throw new Error(`unexpected engine call ${p}`);
  };
  return { state, take: () => collectDockerSnapshot(get) };
}

const container = (id: string, state = 'running') => ({ Id: id, Names: [`/${id}`], State: state, Status: 'Up 1 second', Labels: {}, Mounts: [] });
const command = (seq: number, type: string, extra: Partial<AsyncCommand> = {}): AsyncCommand =>
  ({ id: seq, seq, type, endpointID: 7, timestamp: `2025-03-0${seq}T10:00:00Z`, op: 'add', path: `/x/${seq}`, value: {}, ...extra });

describe('async exchange with a server endpoint', () => {
  let server: Endpoint;
  let dataPath: string;
  const agents: AsyncAgent[] = [];

  const startAgent = (opts: Partial<AsyncAgentOptions> = {}) => {
    const agent = new AsyncAgent({
      apiUrl: server.url, edgeId: 'edge-1', agentVersion: '2.23.0', insecure: false, endpointId: 7, dataPath,
      dockerHost: 'unix:///nonexistent/docker.sock', log, takeSnapshot: engine().take,
      timing: { coalesceMs: 30, minIntervalMs: 10 }, ...opts,
    });
    agents.push(agent);
    agent.start();
    return agent;
  };

  beforeEach(async () => {
    server = new Endpoint();
    await server.start();
    dataPath = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-async-'));
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await server.close();
    fs.rmSync(dataPath, { recursive: true, force: true });
  });

  it('starts with a gzipped full snapshot and the watermark, then sends patches on the snapshot timer (nanoseconds)', async () => {
    const e = engine();
    server.respond = (s, i) => {
      if (i === 0) e.state.containers.push(container('web'));
      return server.ok({ snapshotInterval: 150 * MS }, s);
    };
    startAgent({ takeSnapshot: e.take });
    const [first, second, third] = await server.waitFor(3);

    expect(first.headers).toMatchObject({
      'x-portaineragent-edgeid': 'edge-1', 'portainer-agent': '2.23.0', 'portainer-agent-platform': '1',
      'x-portaineragent-update-id': '0', 'content-type': 'application/json', 'content-encoding': 'gzip',
    });
    expect(first.headers['x-portaineragent-timezone']).toBeTruthy();
    expect(first.body).toMatchObject({ endpointId: 7, commandTimestamp: '2000-01-01T00:00:00Z', capstan: { seq: 0, acks: [] } });
    const full = (first.body.snapshot as { docker: DockerSnapshot }).docker;
    expect(full).toMatchObject({ DockerVersion: '27.5.1', ContainerCount: 0, ImageCount: 1 });

    // The snapshot timer only: a patch from the accepted baseline, no watermark.
    expect(second.gzip).toBe(true);
    expect(second.body.commandTimestamp).toBeUndefined();
    const patch = second.body.snapshot as { dockerPatch: unknown[]; dockerHash: number };
    expect(patch.dockerHash).toBe(snapshotHash(full));
    expect(patch.dockerPatch).toEqual(expect.arrayContaining([{ op: 'replace', path: '/ContainerCount', value: 1 }]));
    expect(server.stored).toMatchObject({ ContainerCount: 1, RunningContainerCount: 1, DockerSnapshotRaw: { Containers: [{ Id: 'web' }] } });
    // The next patch builds on the one accepted before it.
    expect((third.body.snapshot as { dockerHash: number }).dockerHash).not.toBe(patch.dockerHash);
    expect(server.rejectedPatches).toBe(0);

    const gap = second.at - first.at;
    expect(gap).toBeGreaterThanOrEqual(140);
    expect(gap).toBeLessThan(1000);
  });

  it('re-sends a full snapshot at once when the server asks for one, and patches from it afterwards', async () => {
    const e = engine();
    server.respond = (s, i) => {
      if (i === 1) {
        server.stored = undefined; // the server lost its copy: the patch cannot apply
        e.state.containers.push(container('db', 'exited'));
      }
      return server.ok({ snapshotInterval: 300 * MS }, s);
    };
    startAgent({ takeSnapshot: e.take });
    const seen = await server.waitFor(4);
    expect(seen.map((s) => Object.keys(s.body.snapshot ?? {}).sort())).toEqual([['docker'], ['dockerHash', 'dockerPatch'], ['docker'], ['dockerHash', 'dockerPatch']]);
    // "At once": the coalescing window, not the 300 ms timer.
    expect(seen[2].at - seen[1].at).toBeLessThan(200);
    const retried = (seen[2].body.snapshot as { docker: DockerSnapshot }).docker;
    expect(retried.StoppedContainerCount).toBe(1);
    expect((seen[3].body.snapshot as { dockerHash: number }).dockerHash).toBe(snapshotHash(retried));
    expect(server.stored).toMatchObject({ StoppedContainerCount: 1 });
  });

  it('coalesces timers firing together into one request carrying both flags; a pure ping is plain JSON', async () => {
    server.respond = (s) => server.ok({ pingInterval: 200 * MS, snapshotInterval: 200 * MS, commandInterval: 200 * MS }, s);
    startAgent();
    await server.waitFor(1);
    await new Promise((r) => setTimeout(r, 1100));
    const seen = server.seen.slice(1);
    // Three timers × ~5 ticks, one request per tick time.
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.length).toBeLessThanOrEqual(6);
    for (const s of seen) {
      expect(s.body.commandTimestamp).toBe('2000-01-01T00:00:00Z');
      expect(s.body.snapshot).toHaveProperty('dockerPatch');
    }
    await Promise.all(agents.splice(0).map((a) => a.stop()));

    const before = server.seen.length;
    server.respond = (s) => server.ok({ pingInterval: 100 * MS }, s);
    startAgent();
    await server.waitFor(before + 3);
    const ping = server.seen[before + 2];
    expect(ping.gzip).toBe(false);
    expect(ping.headers['content-encoding']).toBeUndefined();
    expect(ping.body).toEqual({ endpointId: 7, capstan: { seq: 0, acks: [] } });
  });

  it('all intervals disabled fall back to a one-minute ping', async () => {
    const agent = startAgent();
    await server.waitFor(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(agent.intervals).toEqual({ pingMs: 60_000, snapshotMs: 0, commandMs: 0 });
  });

  it('acks commands at once, keeps them until a 200 confirmed them, and fetches again when told there is more', async () => {
    let failOnce = true;
    server.respond = (s, i) => {
      if (i === 0) return server.ok({ pingInterval: 200 * MS, commands: [command(1, 'edgeStack'), command(2, 'edgeJob', { stopOnFailure: true })] }, s);
      if (s.body.capstan.acks.length && failOnce) {
        failOnce = false;
        return { status: 500, body: { message: 'database is down', details: 'try later' } };
      }
      if (i <= 3) return server.ok({ pingInterval: 200 * MS, capstan: { more: true } }, s);
      return server.ok({ pingInterval: 200 * MS }, s);
    };
    startAgent();
    const seen = await server.waitFor(6);
    const [, followUp, retry, more] = seen;
    // Sent at once after the commands ran (window), with the watermark of the last one.
    expect(followUp.at - seen[0].at).toBeLessThan(150);
    expect(followUp.body.commandTimestamp).toBe('2025-03-02T10:00:00Z');
    expect(followUp.body.capstan.seq).toBe(2);
    expect(followUp.body.capstan.acks).toEqual([
      { seq: 1, status: 'failed', error: 'unsupported command type edgeStack', finishedAt: expect.any(Number) },
      { seq: 2, status: 'failed', error: 'not run: command 1 failed and this command was queued stop-on-failure', finishedAt: expect.any(Number) },
    ]);
    // The 500 lost nothing: the retry (jittered within the 200 ms ping) carries the same acks.
    expect(retry.at - followUp.at).toBeLessThan(250);
    expect(retry.body.capstan.acks).toEqual(followUp.body.capstan.acks);
    // Confirmed by a 200 that said "more": the next request leaves at once, without acks.
    expect(more.at - retry.at).toBeLessThan(150);
    expect(more.body.commandTimestamp).toBe('2025-03-02T10:00:00Z');
    expect(more.body.capstan).toEqual({ seq: 2, acks: [] });
    expect(JSON.parse(fs.readFileSync(path.join(dataPath, JOURNAL_FILE), 'utf8'))).toMatchObject({ lastSeq: 2, lastOk: false, pendingAcks: [] });
  });

  it('sends at most 500 acks per request, with a seq that does not cover the ones held back', async () => {
    const many = Array.from({ length: 620 }, (_, i) => command(i + 1, 'edgeStack', { stopOnFailure: i > 0, timestamp: '2025-03-01T10:00:00Z' }));
    server.respond = (s, i) => server.ok(i === 0 ? { commands: many } : {}, s);
    startAgent();
    const [, a, b] = await server.waitFor(3, 15_000);
    expect(a.body.capstan.acks.map((x) => x.seq)).toEqual(many.slice(0, 500).map((x) => x.seq));
    expect(a.body.capstan.seq).toBe(500);
    expect(b.body.capstan.acks.map((x) => x.seq)).toEqual(many.slice(500).map((x) => x.seq));
    expect(b.body.capstan.seq).toBe(620);
    await new Promise((r) => setTimeout(r, 100));
    expect(server.seen.length).toBe(3);
    expect(JSON.parse(fs.readFileSync(path.join(dataPath, JOURNAL_FILE), 'utf8'))).toMatchObject({ lastSeq: 620, pendingAcks: [] });
  }, 20_000);

  it('a command cut short by a restart is acked as interrupted by the next agent and never re-run', async () => {
    const ran: number[] = [];
    server.respond = (s) => server.ok({ commands: [command(1, 'container'), command(2, 'container')] }, s);
    const first = startAgent({ execute: (c) => {
      ran.push(c.seq!);
      return new Promise(() => { /* the agent dies while this runs */ });
    } });
    await server.waitFor(1);
    while (!ran.length) await new Promise((r) => setTimeout(r, 10));
    void first.stop();
    agents.splice(agents.indexOf(first), 1);

    startAgent({ execute: async (c) => {
      ran.push(c.seq!);
      return { ok: true };
    } });
    const seen = await server.waitFor(3);
    expect(ran).toEqual([1, 2]);
    expect(seen[1].body.capstan.acks).toEqual([{ seq: 1, status: 'failed', error: INTERRUPTED_ERROR, finishedAt: expect.any(Number) }]);
    expect(seen[2].body.capstan).toEqual({ seq: 2, acks: [{ seq: 2, status: 'succeeded', finishedAt: expect.any(Number) }] });
  });

  it('adopts the environment id from the reply for a global key, and keeps it across restarts', async () => {
    server.respond = (s) => server.ok({ endpointID: 12, pingInterval: 100 * MS }, s);
    const agent = startAgent({ endpointId: 0 });
    const seen = await server.waitFor(2);
    expect(seen[0].body.endpointId).toBeUndefined();
    expect(seen[1].body.endpointId).toBe(12);
    expect(agent.endpointId).toBe(12);
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    startAgent({ endpointId: 0 });
    expect(server.seen.length).toBe(2);
    expect((await server.waitFor(3))[2].body.endpointId).toBe(12);
  });
});
