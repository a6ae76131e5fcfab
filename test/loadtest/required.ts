/**
 * Making many environments REQUIRED at once through the public API (main thread, `--mode push`).
 *
 * There is no bulk route: a tunnel is asked for per environment, by a Docker API call (or
 * `POST /api/endpoints/{id}/snapshot`), which makes the server require the tunnel, push the new
 * reply (REQUIRED, port, credentials) to the agent, and wait for the tunnel (2 check-in intervals +
 * 5 s, then 504: the simulated agents open none). So one `GET /api/endpoints/{id}/docker/_ping`
 * per environment, pipelined (HTTP/1.1) on a few keep-alive connections opened before, written all
 * at once: the gateway starts every one as soon as it has read it, the way as many concurrent
 * clients would, without one socket (and one file descriptor at each end) per call. The answers
 * come back in order; the tester reads them until it stops waiting, then closes the connections.
 */
import tls from 'node:tls';
import { classify } from './fleet';
import { ProtocolError, ResponseParser, serializeRequest, type HeaderPair } from './http1';
import { errorCode, outcomeLabel } from './stats';
import { openTls } from './storm';

/** What the calls did. */
export interface RequiredCalls {
  /** The path of each call ({id}: the environment). */
  path: string;
  calls: number;
  connections: number;
  /** Opening the connections before the firing, ms. */
  connectMs: number;
  /** First request written, and the last one handed to the kernel, ms since the run start. */
  firedAt: number;
  writtenAt: number;
  /**
   * Outcome counts: `HTTP 503: <the error's details>`, `connection reset`, `not answered` (still
   * waiting when the tester closed the connections), ...
   */
  outcomes: Record<string, number>;
  /** Each call's outcome, in `endpointIds` order. */
  perCall: string[];
  /** The server's first answer per outcome (or the error). */
  messages: Record<string, string>;
  /** When the last answer came, ms since the run start (NaN: none came). */
  lastAnswerAt: number;
}

/** Requests per `write` call. */
const BATCH = 64;

/** A call the tester stopped waiting for. */
export const NOT_ANSWERED = 'not answered';

/** An answer's outcome: its status, and for an error Portainer's `details` (else `message`), so causes are told apart. */
export function answerOutcome(status: number, body: string): string {
  const label = outcomeLabel(status);
  if (status < 400) return label;
  try {
    const o = JSON.parse(body) as { message?: unknown; details?: unknown };
    const why = typeof o.details === 'string' && o.details ? o.details : typeof o.message === 'string' ? o.message : '';
    return why ? `${label}: ${why.slice(0, 90)}` : label;
  } catch {
    return label;
  }
}

/**
 * Whether a call got as far as requiring the tunnel: it timed out waiting for it (the simulated
 * agents open none), was answered through it, or was still waiting. Anything else (no state
 * leader, no free virtual tunnel port, ...) failed before: its agent was never sent REQUIRED for it.
 */
export const askedForTunnel = (outcome: string): boolean => outcome === NOT_ANSWERED || outcome === '200' || /did not open its tunnel in time/.test(outcome);

/** Pipelined calls in flight; `allAnswered` resolves when every call ended (answered or failed). */
export interface RequiredFiring {
  readonly result: RequiredCalls;
  readonly allAnswered: Promise<void>;
  /** Stops waiting: unanswered calls count as `not answered`, the connections are closed. */
  close(): void;
}

/**
 * Opens `connections` TLS connections (spread over the gateways), then writes one call per
 * environment, dealt round-robin over them, and follows the answers.
 */
export async function fireRequired(o: {
  bases: string[];
  auth: Record<string, string>;
  insecure: boolean;
  endpointIds: number[];
  connections: number;
  /** ms since the run start. */
  now: () => number;
}): Promise<RequiredFiring> {
  const context = tls.createSecureContext();
  const urls = o.bases.map((b) => new URL(b));
  const n = Math.max(1, Math.min(o.connections, o.endpointIds.length));
  const t0 = o.now();
  const socks = await Promise.all(Array.from({ length: n }, (_, k) => openTls(urls[k % urls.length], o.insecure, context)));
  const result: RequiredCalls = {
    path: '/api/endpoints/{id}/docker/_ping', calls: o.endpointIds.length, connections: n, connectMs: o.now() - t0,
    firedAt: NaN, writtenAt: NaN, outcomes: {}, perCall: new Array<string>(o.endpointIds.length).fill(NOT_ANSWERED), messages: {}, lastAnswerAt: NaN,
  };
  const count = (outcome: string, calls: number[], message?: string) => {
    result.outcomes[outcome] = (result.outcomes[outcome] ?? 0) + calls.length;
    for (const i of calls) result.perCall[i] = outcome;
    if (message !== undefined) result.messages[outcome] ??= message.slice(0, 300);
  };
  const auth = Object.entries(o.auth) as HeaderPair[];
  let pendingTotal = o.endpointIds.length;
  let writes = 0;
  let resolveAll!: () => void;
  const allAnswered = new Promise<void>((r) => (resolveAll = r));
  const ended = (k: number) => {
    pendingTotal -= k;
    if (pendingTotal <= 0) resolveAll();
  };
  // Per connection, the calls not answered yet, in the order written (answers come in that order).
  const pending: number[][] = Array.from({ length: n }, () => []);
  result.firedAt = o.now();
  socks.forEach((sock, k) => {
    const host = urls[k % urls.length].host;
    const reqs: string[] = [];
    for (let i = k; i < o.endpointIds.length; i += n) {
      pending[k].push(i);
      reqs.push(serializeRequest('GET', `/api/endpoints/${o.endpointIds[i]}/docker/_ping`, [['Host', host], ...auth]));
    }
    pending[k].reverse();
    const parser = new ResponseParser();
    const fail = (outcome: string, message: string) => {
      if (!pending[k].length) return;
      count(outcome, pending[k], message);
      ended(pending[k].length);
      pending[k] = [];
    };
    sock.on('data', (chunk: Buffer) => {
      try {
        for (const res of parser.push(chunk)) {
          if (!pending[k].length) break;
          result.lastAnswerAt = o.now();
          const body = res.body.toString('utf8');
          count(answerOutcome(res.status, body), [pending[k].pop()!], body);
          ended(1);
        }
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        fail('protocol', err.message);
        sock.destroy();
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => fail(outcomeLabel(errorCode(classify(err, true))), err.message));
    sock.on('close', () => fail('connection closed', 'the server closed the connection before answering every call'));
    for (let i = 0; i < reqs.length; i += BATCH) {
      writes++;
      sock.write(reqs.slice(i, i + BATCH).join(''), () => {
        if (--writes === 0) result.writtenAt = o.now();
      });
    }
  });
  return {
    result, allAnswered,
    close() {
      socks.forEach((sock, k) => {
        if (pending[k].length) {
          count(NOT_ANSWERED, pending[k], 'still waiting when the tester closed the connection (after measuring)');
          ended(pending[k].length);
          pending[k] = [];
        }
        sock.destroy();
      });
    },
  };
}
