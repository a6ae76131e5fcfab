import { dockerCall, dockerErrorMessage } from '../docker';
import type { AsyncCommand } from './wire';

/** What running one command gave. */
export interface CommandOutcome {
  ok: boolean;
  error?: string;
  /** `dockerRequest` only: `{status, body, truncated?}`. */
  result?: unknown;
}

/** How commands reach the engine. */
export interface ExecutorOptions {
  dockerHost: string;
  /** Per Docker call; stopping a container may take its whole stop timeout. Default 5 min. */
  timeoutMs?: number;
}

/** Most bytes of a `dockerRequest` reply body kept in its ack. */
export const RESULT_MAX_BYTES = 4096;

type Obj = Record<string, unknown>;

/** A field of a command value, by name, case-insensitively (Go's JSON decoding, reference 2.6). */
function field(obj: unknown, name: string): unknown {
  if (!obj || typeof obj !== 'object') return undefined;
  const o = obj as Obj;
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  const key = Object.keys(o).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : o[key];
}

const str = (v: unknown) => (typeof v === 'string' ? v : '');
const bool = (v: unknown) => v === true;

class CommandError extends Error {}

function required(value: unknown, name: string): string {
  const s = str(field(value, name));
  if (!s) throw new CommandError(`${name} is missing`);
  return s;
}

function query(params: Record<string, unknown>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Validates a `dockerRequest` path: absolute, no query of its own, no `.`/`..` segments. */
export function checkDockerPath(p: unknown): string {
  if (typeof p !== 'string' || !p.startsWith('/')) throw new CommandError('Path must start with "/"');
  if (/[?#]/.test(p)) throw new CommandError('Path must not carry a query or fragment (use Query)');
  let decoded: string;
  try {
    decoded = decodeURIComponent(p);
  } catch {
    throw new CommandError('Path has a malformed escape');
  }
  // Checked after decoding so `%2e%2e` or `..%2f` cannot climb either.
  if (decoded.split('/').some((seg) => seg === '..' || seg === '.')) throw new CommandError('Path must not contain "." or ".." segments');
  return p;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']);

/** The Docker call a command stands for. */
function toCall(cmd: AsyncCommand): { method: string; path: string; body?: unknown; keepResult?: boolean } {
  const v = cmd.value;
  switch (cmd.type) {
    case 'container': {
      const name = encodeURIComponent(required(v, 'ContainerName'));
      const op = str(field(v, 'ContainerOperation'));
      if (op === 'start') {
        const o = field(v, 'ContainerStartOptions');
        return { method: 'POST', path: `/containers/${name}/start${query({ checkpoint: str(field(o, 'CheckpointID')), 'checkpoint-dir': str(field(o, 'CheckpointDir')) })}` };
      }
      if (op === 'restart' || op === 'stop' || op === 'kill') return { method: 'POST', path: `/containers/${name}/${op}` };
      if (op === 'delete') {
        const o = field(v, 'ContainerRemoveOptions');
        return { method: 'DELETE', path: `/containers/${name}${query({ force: bool(field(o, 'Force')), v: bool(field(o, 'RemoveVolumes')), link: bool(field(o, 'RemoveLinks')) || undefined })}` };
      }
      throw new CommandError(`unsupported container operation "${op}"`);
    }
    case 'image': {
      const name = encodeURIComponent(required(v, 'ImageName'));
      const op = str(field(v, 'ImageOperation'));
      if (op !== 'delete') throw new CommandError(`unsupported image operation "${op}"`);
      const o = field(v, 'ImageRemoveOptions');
      // As Docker's Go client: children are kept unless PruneChildren asks otherwise.
      return { method: 'DELETE', path: `/images/${name}${query({ force: bool(field(o, 'Force')), noprune: bool(field(o, 'PruneChildren')) ? undefined : 1 })}` };
    }
    case 'volume': {
      const name = encodeURIComponent(required(v, 'VolumeName'));
      const op = str(field(v, 'VolumeOperation'));
      if (op !== 'delete') throw new CommandError(`unsupported volume operation "${op}"`);
      return { method: 'DELETE', path: `/volumes/${name}${query({ force: bool(field(v, 'ForceRemove')) })}` };
    }
    case 'dockerRequest': {
      const method = str(field(v, 'Method')).toUpperCase();
      if (!METHODS.has(method)) throw new CommandError(`Method must be one of ${[...METHODS].join(', ')}`);
      const path = checkDockerPath(field(v, 'Path'));
      const q = field(v, 'Query');
      if (q !== undefined && (typeof q !== 'object' || q === null || Array.isArray(q))) throw new CommandError('Query must be an object');
      return { method, path: `${path}${query((q ?? {}) as Obj)}`, body: field(v, 'Body'), keepResult: true };
    }
    default:
      throw new CommandError(`unsupported command type ${cmd.type}`);
  }
}

/** A reply body as kept in an ack: parsed JSON when whole and small, else text cut at 4 KiB. */
function keptBody(body: Buffer, contentType: string | undefined): { body: unknown; truncated?: true } {
  if (!body.length) return { body: null };
  if (body.length > RESULT_MAX_BYTES) return { body: body.subarray(0, RESULT_MAX_BYTES).toString('utf8'), truncated: true };
  const text = body.toString('utf8');
  if (/json/i.test(contentType ?? '')) {
    try {
      return { body: JSON.parse(text) };
    } catch { /* fall through to text */ }
  }
  return { body: text };
}

/**
 * Runs one async command against the local engine (reference 2.6 plus Capstan's `dockerRequest`).
 * Docker's 304 (already started, already stopped) counts as success. Never throws: a failure is
 * an outcome with Docker's message, or the agent's reason for not running it.
 */
export async function executeCommand(cmd: AsyncCommand, opts: ExecutorOptions): Promise<CommandOutcome> {
  let call;
  try {
    call = toCall(cmd);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  let res;
  try {
    res = await dockerCall(opts.dockerHost, { method: call.method, path: call.path, body: call.body, timeoutMs: opts.timeoutMs ?? 300_000 });
  } catch (err) {
    return { ok: false, error: `cannot reach the Docker engine at ${opts.dockerHost}: ${(err as Error).message}` };
  }
  const ok = (res.status >= 200 && res.status < 300) || res.status === 304;
  const outcome: CommandOutcome = { ok };
  if (!ok) outcome.error = dockerErrorMessage(res.status, res.body);
  if (call.keepResult) outcome.result = { status: res.status, ...keptBody(res.body, res.headers['content-type']) };
  return outcome;
}
