import http from 'node:http';
import zlib from 'node:zlib';
import * as jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { LRUCache } from 'lru-cache';
import type { Context, ServiceBroker, ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';
import { AcceptSnapshotParams, AgentBoundEvent, SnapshotEvents, SnapshotIdParams, call, type SnapshotSummary } from '../../shared/contracts';
import { AppError, BadRequestError } from '../../shared/errors';
import { agentSignatureHeaders } from '../../shared/protocol';
import {
  MAX_PACKED_SNAPSHOT_CHARS, MAX_SNAPSHOT_BYTES, collectDockerSnapshot, packSnapshot, snapshotHash, summarizeSnapshot, unpackSnapshot, type DockerSnapshot,
} from '../../shared/snapshot';
import { TunnelHttpAgent, tunnelTarget } from '../../shared/tunnel';

/** Async environments whose latest snapshot stays in memory, so their next patch needs no store read. */
const RECENT_SNAPSHOTS = 500;

/** First snapshots taken at once (each opens a tunnel to a newly enrolled agent). */
const FIRST_SNAPSHOT_CONCURRENCY = 16;

/** Runs tasks keyed by environment, at most `concurrency` at a time, each key once while queued or running. */
class BoundedQueue {
  private readonly waiting = new Map<number, () => Promise<void>>();
  private readonly running = new Set<number>();

  constructor(private readonly concurrency: number) {}

  push(key: number, task: () => Promise<void>): void {
    if (this.running.has(key) || this.waiting.has(key)) return;
    this.waiting.set(key, task);
    this.next();
  }

  private next(): void {
    while (this.running.size < this.concurrency && this.waiting.size) {
      const [key, task] = this.waiting.entries().next().value!;
      this.waiting.delete(key);
      this.running.add(key);
      void task().finally(() => {
        this.running.delete(key);
        this.next();
      });
    }
  }
}

/** One Docker API read through the tunnel may take this long (a busy engine listing thousands of containers). */
const REQUEST_TIMEOUT_MS = 30_000;

/** The agent answered a snapshot read with an error status. */
class AgentReadError extends AppError {
  constructor(path: string, status: number, body: string) {
    super(`The agent answered ${status} to ${path}`, 502, 'SNAPSHOT_READ_FAILED', { path, status, body: body.slice(0, 300) }, { retryable: true });
  }
}

/**
 * `snapshots`: Docker snapshots of standard-mode Edge environments, taken through their tunnel
 * with signed requests to the agent (reference 5.2): at an agent's first check-in, before the
 * tunnel service closes an idle tunnel, and on demand (`POST /api/endpoints/{id}/snapshot`). The
 * latest one goes to state (raw in the store, the summary on the environment). Async environments
 * push their own snapshots instead. Concurrent requests for one environment share one snapshot.
 *
 * The Docker reads follow the route `tunnel.ensureTunnel` returns: over SSH channels opened
 * directly in the tunnel's own process, through its node's data listener from anywhere else.
 */
export function snapshotsService(_config: Config): ServiceSchema {
  const inFlight = new Map<number, Promise<SnapshotSummary>>();
  // A fleet enrolling at once must not ask every agent for a tunnel at the same moment.
  const firstSnapshots = new BoundedQueue(FIRST_SNAPSHOT_CONCURRENCY);
  const recent = new LRUCache<number, { hash: number; doc: DockerSnapshot }>({ max: RECENT_SNAPSHOTS });
  let signature: ReturnType<typeof agentSignatureHeaders> | undefined;

  return {
    name: 'snapshots',
    actions: {
      accept: {
        params: AcceptSnapshotParams,
        handler(ctx: Context<AcceptSnapshotParams>) {
          return accept(this.broker, ctx.params);
        },
      },
      take: {
        params: SnapshotIdParams,
        handler(ctx: Context<SnapshotIdParams>): Promise<SnapshotSummary> {
          const { id } = ctx.params;
          let pending = inFlight.get(id);
          if (!pending) {
            pending = take(this.broker, id).finally(() => inFlight.delete(id));
            inFlight.set(id, pending);
          }
          return pending;
        },
      },
    },
    events: {
      // Portainer opens a tunnel at the first check-in to take the first snapshot (reference 5.2).
      [SnapshotEvents.agentBound]: {
        params: AgentBoundEvent,
        handler(ctx: Context<AgentBoundEvent>) {
          if (ctx.params.asyncMode) return;
          const { id } = ctx.params;
          firstSnapshots.push(id, () => call(this.broker, 'snapshots.take', { id }, { timeout: 120_000 })
            .then((s) => this.logger.info({ id, containers: s.ContainerCount }, 'snapshots: first snapshot stored'))
            .catch((err: Error) => this.logger.warn({ id, err: err.message }, 'snapshots: first snapshot failed')));
        },
      },
    },
  };

  /**
   * An async agent's snapshot (reference 2.5): a full one replaces the stored one; a patch applies
   * to the stored one only if `hash` is that snapshot's hash, else the agent is asked for a full
   * one. The latest snapshots are kept in a small cache so a patch rarely needs a store read.
   */
  async function accept(broker: ServiceBroker, p: AcceptSnapshotParams): Promise<{ needFullSnapshot: boolean }> {
    if (p.full) {
      let doc: DockerSnapshot;
      try {
        doc = unpackSnapshot(p.full);
      } catch (err) {
        throw new BadRequestError('The snapshot is not valid gzip JSON', (err as Error).message);
      }
      await call(broker, 'state.putSnapshot', { id: p.id, packed: p.full });
      recent.set(p.id, { hash: snapshotHash(doc), doc });
      return { needFullSnapshot: false };
    }
    if (!p.patch || p.hash === undefined) throw new BadRequestError('A snapshot patch needs the hash of the snapshot it applies to', { id: p.id });
    let ops: Operation[];
    try {
      ops = JSON.parse(zlib.gunzipSync(Buffer.from(p.patch, 'base64'), { maxOutputLength: MAX_SNAPSHOT_BYTES }).toString('utf8')) as Operation[];
      if (!Array.isArray(ops)) throw new Error('a patch is a JSON array');
    } catch (err) {
      throw new BadRequestError('The snapshot patch is not valid gzip JSON', (err as Error).message);
    }
    let base = recent.get(p.id);
    if (!base || base.hash !== p.hash) {
      const { packed } = await call(broker, 'state.getSnapshot', { id: p.id });
      if (!packed) return { needFullSnapshot: true };
      const doc = unpackSnapshot(packed);
      base = { hash: snapshotHash(doc), doc };
    }
    if (base.hash !== p.hash) return { needFullSnapshot: true };
    if (!ops.length) return { needFullSnapshot: false };
    let next: DockerSnapshot;
    try {
      next = jsonpatch.applyPatch(structuredClone(base.doc), ops, true, true).newDocument;
    } catch {
      return { needFullSnapshot: true };
    }
    const packed = packSnapshot(next);
    if (packed.length > MAX_PACKED_SNAPSHOT_CHARS) throw new AppError('The snapshot is too large to store', 413, 'SNAPSHOT_TOO_LARGE', { id: p.id, packedChars: packed.length });
    await call(broker, 'state.putSnapshot', { id: p.id, packed });
    recent.set(p.id, { hash: snapshotHash(next), doc: next });
    return { needFullSnapshot: false };
  }

  async function take(broker: ServiceBroker, id: number): Promise<SnapshotSummary> {
    signature ??= agentSignatureHeaders(() => call(broker, 'state.getSecret', { name: 'agentPrivateKey' }).then((s) => s.value));
    const headers = { ...(await signature()) };
    const route = await call(broker, 'tunnel.ensureTunnel', { id }, { timeout: 600_000 });
    const agent = new TunnelHttpAgent({ keepAlive: true, maxSockets: 8 });
    const target = tunnelTarget(route, agent);
    try {
      const get = (path: string) => new Promise<unknown>((resolve, reject) => {
        const req = http.request({ ...target, path, method: 'GET', timeout: REQUEST_TIMEOUT_MS, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300) return reject(new AgentReadError(path, res.statusCode ?? 0, body));
            try {
              resolve(JSON.parse(body));
            } catch (err) {
              reject(err);
            }
          });
        });
        req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within ${REQUEST_TIMEOUT_MS} ms`)));
        req.on('error', reject);
        req.end();
      });
      const snapshot = await collectDockerSnapshot(get, (step, err) => broker.logger.warn({ id, step, err: err.message }, 'snapshots: part of a snapshot failed'));
      const packed = packSnapshot(snapshot);
      if (packed.length > MAX_PACKED_SNAPSHOT_CHARS) {
        throw new AppError('The snapshot is too large to store', 413, 'SNAPSHOT_TOO_LARGE', { id, packedChars: packed.length, limit: MAX_PACKED_SNAPSHOT_CHARS });
      }
      await call(broker, 'state.putSnapshot', { id, packed });
      return summarizeSnapshot(snapshot) as SnapshotSummary;
    } finally {
      agent.destroy();
    }
  }
}
