/**
 * Where the simulated agents run (main thread side): worker threads of this process, or, when
 * their sockets would not fit in one process's open-file limit (threads share it), child
 * processes running the same worker code.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { MainMessage, WorkerInit, WorkerMessage } from './worker';

/** Agents one tester process holds at most by default: each holds a socket, and the hard open-file limit may be 20,000. */
export const AGENTS_PER_PROCESS = 15_000;

/** How the agents are split. */
export interface WorkerPlan {
  kind: 'thread' | 'process';
  /** Workers (threads, or processes each running one fleet). */
  count: number;
  /** Agents of the busiest worker. */
  perWorker: number;
}

/**
 * Threads (`threads` of them, at most one per agent) while every agent fits in one process, else
 * child processes: `processes` if given, else enough that none holds more than `maxPerProcess`
 * agents (and at least `threads`, so the CPU split asked for is kept).
 */
export function planWorkers(agents: number, threads: number, processes?: number, maxPerProcess = AGENTS_PER_PROCESS): WorkerPlan {
  const split = (kind: WorkerPlan['kind'], n: number): WorkerPlan => {
    const count = Math.max(1, Math.min(n, agents));
    return { kind, count, perWorker: Math.ceil(agents / count) };
  };
  if (processes !== undefined) return processes > 1 ? split('process', processes) : split('thread', threads);
  const needed = Math.ceil(agents / maxPerProcess);
  return needed > 1 ? split('process', Math.max(needed, threads)) : split('thread', threads);
}

/** One running worker, thread or process. */
export interface WorkerHandle {
  /** The child process's pid (its CPU and RSS are the tester's too); undefined for a thread. */
  pid?: number;
  post(m: MainMessage): void;
  terminate(): Promise<void>;
}

export interface WorkerEvents {
  message(m: WorkerMessage): void;
  error(err: Error): void;
  exit(): void;
}

const SCRIPT = path.join(__dirname, 'worker.js');

/** Starts one worker of the plan's kind on `init`. */
export function startWorker(kind: WorkerPlan['kind'], init: WorkerInit, on: WorkerEvents): WorkerHandle {
  if (kind === 'thread') {
    const worker = new Worker(SCRIPT, { workerData: init });
    worker.on('message', on.message);
    worker.on('error', on.error);
    worker.on('exit', on.exit);
    return { post: (m) => worker.postMessage(m), terminate: async () => void (await worker.terminate()) };
  }
  // Advanced serialization: the samples' typed arrays cross as they are. No inspector or profiler
  // flags of the parent.
  const child = fork(SCRIPT, [], { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('message', (m) => on.message(m as WorkerMessage));
  child.on('error', on.error);
  child.on('exit', (code, signal) => {
    if (code) on.error(new Error(`the tester process ${child.pid} exited with code ${code}${signal ? ` (${signal})` : ''}`));
    on.exit();
  });
  child.send({ type: 'init', init } satisfies MainMessage);
  return {
    pid: child.pid,
    post: (m) => {
      if (child.connected) child.send(m);
    },
    async terminate() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // It exits on its own after its final report; one still running is stopped.
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      if (child.connected) child.disconnect();
      child.kill('SIGTERM');
      await exited;
      clearTimeout(t);
    },
  };
}
