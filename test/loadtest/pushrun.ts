/**
 * The phases of a push run (main thread, `--mode push`): the agents bind and open their channels;
 * once every channel is open (or `--open-timeout` passed) and 5 s have settled, the idle phase of
 * `--duration` s is measured; then `--push-required` environments are made REQUIRED at once and
 * the run waits until every one's agent received it (or `--push-timeout`), then a little for the
 * calls' answers, and ends.
 */
import type { Monitor } from './monitor';
import type { LoadTestOptions } from './options';
import type { PushData } from './pushreport';
import { requiredTimings } from './pushreport';
import { fireRequired, NOT_ANSWERED } from './required';

/** Seconds after every channel opened before the idle phase is measured (the opening's backlog drains). */
export const SETTLE_S = 5;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** `n` of `total` agent indexes spread evenly (every agent when n = total). */
export function spreadPick(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, j) => Math.floor((j * total) / n));
}

export type PushPhases = Pick<PushData, 'requested' | 'allOpenAtS' | 'openTimeoutS' | 'idle' | 'openByPortIdle' | 'calls' | 'requiredTimeoutS'>;

export async function runPushPhases(o: {
  opts: LoadTestOptions;
  /** Environments to make REQUIRED after the idle phase (`--push-required`, by default every agent's). */
  required: number;
  monitor: Monitor;
  agents: number;
  endpointIds: number[];
  bases: string[];
  auth: Record<string, string>;
  /** ms since the run start. */
  now: () => number;
  /** The run is being cut short (a worker failed, a server process exited, SIGINT). */
  stopped: () => boolean;
  log: (line: string) => void;
}): Promise<PushPhases> {
  const { opts, monitor, log } = o;
  const out: PushPhases = {
    requested: spreadPick(o.agents, o.required), allOpenAtS: null, openTimeoutS: opts.openTimeoutS, idle: null, openByPortIdle: {},
    requiredTimeoutS: opts.pushTimeoutS,
  };
  const s = (ms: number) => (ms / 1000).toFixed(1);

  // Opening: until every channel is open at once.
  for (;;) {
    if (o.stopped()) return out;
    const t = o.now();
    const open = monitor.pushTotals()?.open ?? 0;
    if (open >= o.agents) {
      out.allOpenAtS = Math.round(t / 100) / 10;
      log(`every push channel is open (${o.agents}) at ${s(t)} s`);
      break;
    }
    if (t >= opts.openTimeoutS * 1000) {
      log(`${o.agents - open} of ${o.agents} push channels still not open after --open-timeout ${opts.openTimeoutS} s: the idle phase is measured with ${open}`);
      break;
    }
    monitor.pushNote = 'opening';
    await sleep(250);
  }

  // Idle: whole seconds of the timeline (each point covers the second before its t).
  const from = Math.ceil(o.now() / 1000) + SETTLE_S;
  const to = from + opts.durationS;
  log(`idle phase: ${from}-${to} s (${opts.durationS} s, after ${SETTLE_S} s to settle)`);
  monitor.pushNote = 'settling';
  await sleep(from * 1000 - o.now());
  monitor.pushNote = 'idle';
  // Past the tick of the last idle second.
  while (o.now() < to * 1000 + 500) {
    if (o.stopped()) return out;
    await sleep(Math.min(1000, to * 1000 + 500 - o.now()));
  }
  out.idle = [from, to];
  out.openByPortIdle = { ...monitor.pushTotals()?.openByPort };
  if (!out.requested.length || o.stopped()) return out;

  // REQUIRED for every requested environment at once.
  const ids = out.requested.map((a) => o.endpointIds[a]);
  log(`making ${ids.length} environments REQUIRED at once: GET /api/endpoints/{id}/docker/_ping each, pipelined on ${Math.min(opts.concurrency, ids.length)} connection(s)`);
  monitor.pushNote = 'REQUIRED: connecting';
  const firing = await fireRequired({ bases: o.bases, auth: o.auth, insecure: opts.insecure, endpointIds: ids, connections: opts.concurrency, now: o.now });
  out.calls = firing.result;
  const fired = firing.result.firedAt;
  log(`calls written from ${s(fired)} s (connections opened in ${s(firing.result.connectMs)} s)`);
  const deadline = fired + opts.pushTimeoutS * 1000;
  for (;;) {
    const { reached, already } = requiredTimings(monitor.pushStatus, out.requested, fired);
    const done = reached.size + [...already].filter((a) => !reached.has(a)).length;
    monitor.pushNote = `REQUIRED ${done}/${ids.length}`;
    if (done >= ids.length) {
      log(`every requested agent has received REQUIRED (${reached.size} after the firing, ${done - reached.size} had it already)`);
      break;
    }
    if (o.now() >= deadline || o.stopped()) {
      log(`${ids.length - done} of ${ids.length} agents had not received REQUIRED after --push-timeout ${opts.pushTimeoutS} s`);
      break;
    }
    await sleep(250);
  }
  // The calls answer once their tunnels time out (2 check-in intervals + 5 s): wait that long for the answers, then stop waiting.
  const answersBy = fired + (2 * opts.intervalS + 15) * 1000;
  await Promise.race([firing.allAnswered, sleep(answersBy - o.now())]);
  // The last status events arrive with the next reports.
  await sleep(1500);
  firing.close();
  const answered = Object.entries(firing.result.outcomes).filter(([k]) => k !== NOT_ANSWERED).reduce((a, [, v]) => a + v, 0);
  log(`calls: ${answered}/${ids.length} answered (${Object.entries(firing.result.outcomes).map(([k, v]) => `${k}: ${v}`).join(', ')})`);
  return out;
}
