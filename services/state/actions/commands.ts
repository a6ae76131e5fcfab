import crypto from 'node:crypto';
import {
  MAX_BATCH_COMMANDS, STATUS_RANK, isEdgeType, isFinal,
  type BatchCommandsParams, type BatchCommandsResult, type CommandBatchRecord, type CommandCounts, type CommandRecord, type CommandStatus, type CommandUpdate,
  type Environment, type ListCommandsParams, type PendingCommandsParams, type PendingCommandsResult, type QueueCommandsParams, type QueueCommandsResult,
  type UpdateCommandsParams, type UpdateCommandsResult,
} from '../../../shared/contracts';
import { BadRequestError, NotFoundError } from '../../../shared/errors';
import type { ScanRange, WriteOp } from '../../../shared/store';
import type { Repository } from '../repository';
import type { Leading } from './context';

/*
 * The command ledger. Commands are read from the store, never cached in the leader's memory (an
 * agent offline for days may have thousands); only the per-environment sequence counters are.
 *
 *   commands             <env>:<seq> → CommandRecord (zero-padded, so one environment is one key range in seq order)
 *   command_pending      <env>:<seq> → {} for every queued or delivered command (what reconciliation re-adds)
 *   command_seq          <env>       → { next, lastTs }: next seq, and the last timestamp handed out (ms)
 *   command_batches      <batchId>   → CommandBatchRecord (counters kept with every status change)
 *   command_batch_items  <batchId>:<chunk> → { E: env ids, S: first seqs } of up to 2000 environments
 */
const LEDGER = 'commands';
const PENDING = 'command_pending';
const SEQS = 'command_seq';
const BATCHES = 'command_batches';
const BATCH_ITEMS = 'command_batch_items';
const ENVS_PER_CHUNK = 2000;
/** Created records are returned when a batch has at most this many. */
const RETURN_LIMIT = 1000;
/** About the most bytes of records one answer carries: NATS's default message limit is 1 MB. */
const PAGE_BYTES = 512 * 1024;
/** Values are stored once per environment: a 1 MiB body to 20,000 environments would be 20 GB. */
const MAX_BATCH_VALUE_BYTES = 64 * 1024 * 1024;

const pad = (n: number, w: number) => String(n).padStart(w, '0');
/** Ledger key of a command: `0000000012:000000000005`. */
export const commandKey = (env: number, seq: number): string => `${pad(env, 10)}:${pad(seq, 12)}`;
/** Every key of one environment, from `fromSeq`. */
const envRange = (env: number, fromSeq = 0): ScanRange => ({ gte: commandKey(env, fromSeq), lt: `${pad(env, 10)};` });
function parseKey(key: string): { id: number; seq: number } {
  const [id, seq] = key.split(':');
  return { id: Number(id), seq: Number(seq) };
}
const put = (collection: string, key: string | number, value: Record<string, unknown>): WriteOp => ({ op: 'put', collection, key, value });
const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? '');

interface SeqState { next: number; lastTs: number }
/** Sequence counters per leadership (a new leader reloads them from the store). */
const seqCaches = new WeakMap<Repository, Promise<Map<number, SeqState>>>();
function seqsOf(l: Leading): Promise<Map<number, SeqState>> {
  let cached = seqCaches.get(l.repo);
  if (!cached) {
    cached = (async () => {
      const m = new Map<number, SeqState>();
      for await (const { key, value } of l.main.scan<SeqState>(SEQS)) m.set(key as number, value);
      return m;
    })();
    seqCaches.set(l.repo, cached);
    cached.catch(() => seqCaches.delete(l.repo));
  }
  return cached;
}

const noEnvironment = (id: number) => new NotFoundError('Unable to find an environment with the specified identifier', { id });

/**
 * Queues every command for every environment in one commit: seqs in issue order (environments
 * in the given order, commands in theirs), timestamps strictly increasing per environment.
 * Only existing Edge environments in async mode may receive commands.
 */
export async function queueCommands(l: Leading, p: QueueCommandsParams): Promise<QueueCommandsResult> {
  const ids = [...new Set(p.environmentIds)];
  const total = ids.length * p.commands.length;
  if (total > MAX_BATCH_COMMANDS) throw new BadRequestError(`At most ${MAX_BATCH_COMMANDS} commands per request`, { environments: ids.length, commands: p.commands.length });
  const valueBytes = p.commands.reduce((n, c) => n + size(c.value), 0);
  if (valueBytes * ids.length > MAX_BATCH_VALUE_BYTES) {
    throw new BadRequestError('Commands too large for this many environments', { bytesPerEnvironment: valueBytes, environments: ids.length, maxTotalBytes: MAX_BATCH_VALUE_BYTES });
  }
  const missing: number[] = [];
  const notAsync: number[] = [];
  for (const id of ids) {
    const e = l.repo.get<Environment>('environments', id);
    if (!e) missing.push(id);
    else if (!isEdgeType(e.Type) || !e.Edge.AsyncMode) notAsync.push(id);
  }
  if (ids.length === 1 && missing.length) throw noEnvironment(ids[0]);
  if (missing.length || notAsync.length) {
    throw new BadRequestError('Commands can only be queued for existing Edge environments in async mode', {
      NotFound: missing.slice(0, 100), NotFoundCount: missing.length, NotAsync: notAsync.slice(0, 100), NotAsyncCount: notAsync.length,
    });
  }
  // One queueing at a time: counters are read, advanced and committed together.
  return l.repo.withLock(['commands:queue'], async () => {
    const seqs = await seqsOf(l);
    const BatchId = crypto.randomUUID();
    const nowMs = Date.now();
    const CreatedAt = Math.floor(nowMs / 1000);
    const ops: WriteOp[] = [];
    const advanced = new Map<number, SeqState>();
    const created: CommandRecord[] = [];
    const chunks: { E: number[]; S: number[] }[] = [];
    ids.forEach((id, i) => {
      const st = { ...(seqs.get(id) ?? { next: 1, lastTs: 0 }) };
      if (i % ENVS_PER_CHUNK === 0) chunks.push({ E: [], S: [] });
      chunks[chunks.length - 1].E.push(id);
      chunks[chunks.length - 1].S.push(st.next);
      for (const c of p.commands) {
        const seq = st.next++;
        st.lastTs = Math.max(nowMs, st.lastTs + 1);
        const rec: CommandRecord = {
          EnvironmentId: id, Seq: seq, BatchId, Type: c.type, Value: c.value, StopOnFailure: p.stopOnFailure, Status: 'queued',
          CreatedAt, Timestamp: new Date(st.lastTs).toISOString(), CreatedBy: p.createdBy,
        };
        const key = commandKey(id, seq);
        ops.push(put(LEDGER, key, rec), put(PENDING, key, { EnvironmentId: id, Seq: seq }));
        if (total <= RETURN_LIMIT) created.push(rec);
      }
      advanced.set(id, st);
      ops.push(put(SEQS, id, { ...st }));
    });
    const batch: CommandBatchRecord = {
      BatchId, CreatedAt, CreatedBy: p.createdBy, Environments: ids.length, PerEnvironment: p.commands.length, Total: total,
      Counts: { queued: total, delivered: 0, succeeded: 0, failed: 0 },
    };
    ops.push(put(BATCHES, BatchId, batch));
    chunks.forEach((c, i) => ops.push(put(BATCH_ITEMS, `${BatchId}:${pad(i, 6)}`, c)));
    await l.repo.commit(ops);
    for (const [id, st] of advanced) seqs.set(id, st);
    return { batch, ...(total <= RETURN_LIMIT ? { commands: created } : {}) };
  });
}

/**
 * Applies status changes in one commit. Monotonic: queued → delivered → succeeded | failed, an
 * update to an equal or lower rank is ignored (so a late "delivered" never undoes an ack, and the
 * first result wins); updates for unknown commands are ignored. Watermarks finish every delivered
 * command they reach. Batch counters move with every change.
 */
export async function updateCommands(l: Leading, p: UpdateCommandsParams): Promise<UpdateCommandsResult> {
  const wanted = new Map<string, CommandUpdate>();
  for (const u of p.updates) {
    const key = commandKey(u.id, u.seq);
    const cur = wanted.get(key);
    if (!cur || STATUS_RANK[u.status] > STATUS_RANK[cur.status]) wanted.set(key, u);
  }
  return l.repo.withLock(['commands:update'], async () => {
    const records = new Map<string, CommandRecord>();
    const changed = new Set<string>();
    const mentioned = new Set<string>();
    const deltas = new Map<string, CommandCounts>();
    const load = async (key: string) => {
      const rec = records.get(key) ?? await l.main.get<CommandRecord>(LEDGER, key);
      if (rec) records.set(key, rec);
      return rec;
    };
    const move = (key: string, rec: CommandRecord, status: CommandStatus, at: number, error?: string, result?: unknown) => {
      if (STATUS_RANK[status] <= STATUS_RANK[rec.Status]) return;
      const d = deltas.get(rec.BatchId) ?? { queued: 0, delivered: 0, succeeded: 0, failed: 0 };
      d[rec.Status]--;
      d[status]++;
      deltas.set(rec.BatchId, d);
      const next: CommandRecord = { ...rec, Status: status };
      if (status === 'delivered') next.DeliveredAt = at;
      else {
        next.FinishedAt = at;
        if (error !== undefined) next.Error = error;
        if (result !== undefined) next.Result = result;
      }
      records.set(key, next);
      changed.add(key);
    };

    for (const [key, u] of wanted) {
      mentioned.add(key);
      const rec = await load(key);
      if (rec) move(key, rec, u.status, u.at, u.error, u.result);
    }
    for (const w of p.watermarks ?? []) {
      const until = w.timestamp === undefined ? undefined : Date.parse(w.timestamp);
      if (until !== undefined && Number.isNaN(until)) continue;
      // Only commands still pending can change; keys come in seq order, timestamps grow with seq.
      for await (const { key } of l.main.scan(PENDING, envRange(w.id))) {
        const k = key as string;
        const { seq } = parseKey(k);
        if (w.seq !== undefined && until === undefined && seq > w.seq) break;
        const rec = await load(k);
        if (!rec) continue;
        const reached = (w.seq !== undefined && seq <= w.seq) || (until !== undefined && Date.parse(rec.Timestamp) <= until);
        if (!reached) break;
        mentioned.add(k);
        if (rec.Status === 'delivered') move(k, rec, 'succeeded', w.at);
      }
    }

    const ops: WriteOp[] = [];
    for (const key of changed) {
      const rec = records.get(key)!;
      ops.push(put(LEDGER, key, rec as unknown as Record<string, unknown>));
      if (isFinal(rec.Status)) ops.push({ op: 'delete', collection: PENDING, key });
    }
    for (const [batchId, d] of deltas) {
      const stored = await l.main.get<CommandBatchRecord>(BATCHES, batchId);
      if (!stored) continue;
      // A new object: the store wants plain objects of this realm (jest runs several per process).
      const batch: CommandBatchRecord = { ...stored, Counts: { ...stored.Counts } };
      for (const s of Object.keys(d) as CommandStatus[]) batch.Counts[s] += d[s];
      ops.push(put(BATCHES, batchId, batch));
    }
    if (ops.length) await l.repo.commit(ops);
    const final = [...mentioned].filter((k) => isFinal(records.get(k)?.Status ?? 'queued')).map(parseKey);
    return { updated: changed.size, final };
  });
}

function assertEnvironment(l: Leading, id: number, seqs: Map<number, SeqState>) {
  // A deleted environment's commands stay readable.
  if (!l.repo.get('environments', id) && !seqs.has(id)) throw noEnvironment(id);
}

/**
 * One environment's commands in seq order, paged, optionally by status. Seqs are dense, so an
 * unfiltered page is one key range. A page stops early past about 512 KB of records.
 */
export async function listCommands(l: Leading, p: ListCommandsParams): Promise<{ items: CommandRecord[]; total: number }> {
  const seqs = await seqsOf(l);
  assertEnvironment(l, p.id, seqs);
  const start = p.start ?? 0;
  const limit = p.limit ?? 100;
  const items: CommandRecord[] = [];
  let bytes = 0;
  const take = (rec: CommandRecord) => {
    if (items.length >= limit || (items.length > 0 && bytes >= PAGE_BYTES)) return false;
    items.push(rec);
    bytes += size(rec);
    return true;
  };
  if (!p.status) {
    for await (const { value } of l.main.scan<CommandRecord>(LEDGER, { ...envRange(p.id, start + 1), limit })) if (!take(value)) break;
    return { items, total: (seqs.get(p.id)?.next ?? 1) - 1 };
  }
  let total = 0;
  const pendingOnly = p.status === 'queued' || p.status === 'delivered';
  for await (const { key, value } of l.main.scan<Record<string, unknown>>(pendingOnly ? PENDING : LEDGER, envRange(p.id))) {
    const rec = pendingOnly ? await l.main.get<CommandRecord>(LEDGER, key) : (value as unknown as CommandRecord);
    if (!rec || rec.Status !== p.status) continue;
    if (total++ >= start) take(rec);
  }
  return { items, total };
}

export async function getCommand(l: Leading, id: number, seq: number): Promise<CommandRecord> {
  const rec = await l.main.get<CommandRecord>(LEDGER, commandKey(id, seq));
  if (!rec) throw new NotFoundError('Unable to find a command with the specified identifier', { id, seq });
  return rec;
}

/** Queued and delivered commands of every existing environment, in key order, for rebuilding the delivery queues. */
export async function pendingCommands(l: Leading, p: PendingCommandsParams): Promise<PendingCommandsResult> {
  const limit = p.limit ?? 1000;
  const commands: CommandRecord[] = [];
  let bytes = 0;
  let scanned = 0;
  let last: string | null = null;
  for await (const { key } of l.main.scan(PENDING, { ...(p.afterKey ? { gt: p.afterKey } : {}), limit })) {
    scanned++;
    last = key as string;
    const rec = await l.main.get<CommandRecord>(LEDGER, key);
    if (rec && !isFinal(rec.Status) && l.repo.get('environments', rec.EnvironmentId)) {
      commands.push(rec);
      bytes += size(rec);
    }
    if (bytes >= PAGE_BYTES) return { commands, nextKey: last };
  }
  return { commands, nextKey: scanned === limit ? last : null };
}

export async function getCommandBatch(l: Leading, batchId: string): Promise<CommandBatchRecord> {
  const batch = await l.main.get<CommandBatchRecord>(BATCHES, batchId);
  if (!batch) throw new NotFoundError('Unable to find a command batch with the specified identifier', { batchId });
  return batch;
}

/**
 * A batch's commands from the `start`-th (environments in request order, each environment's
 * commands in seq order), with their current status: what the fan-out worker enqueues.
 */
export async function batchCommands(l: Leading, p: BatchCommandsParams): Promise<BatchCommandsResult> {
  const batch = await getCommandBatch(l, p.batchId);
  const limit = p.limit ?? 1000;
  const commands: CommandRecord[] = [];
  const chunks = new Map<number, { E: number[]; S: number[] }>();
  let bytes = 0;
  let i = p.start;
  for (; i < batch.Total && commands.length < limit && bytes < PAGE_BYTES; i++) {
    const envIndex = Math.floor(i / batch.PerEnvironment);
    const chunkNo = Math.floor(envIndex / ENVS_PER_CHUNK);
    let chunk = chunks.get(chunkNo);
    if (!chunk) {
      chunk = await l.main.get<{ E: number[]; S: number[] }>(BATCH_ITEMS, `${p.batchId}:${pad(chunkNo, 6)}`);
      if (!chunk) throw new NotFoundError('Command batch items missing', { batchId: p.batchId, chunk: chunkNo });
      chunks.set(chunkNo, chunk);
    }
    const j = envIndex % ENVS_PER_CHUNK;
    const rec = await l.main.get<CommandRecord>(LEDGER, commandKey(chunk.E[j], chunk.S[j] + (i % batch.PerEnvironment)));
    if (!rec) continue;
    commands.push(rec);
    bytes += size(rec);
  }
  return { commands, total: batch.Total, next: i };
}
