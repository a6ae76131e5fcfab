import v8 from 'node:v8';

/** The V8 flag {@link countBuffersInHeapLimit} sets. */
export const EXTERNAL_MEMORY_IN_GLOBAL_LIMIT = '--external-memory-accounted-in-global-limit';

/**
 * Makes V8 start a full garbage collection by the memory buffers hold, not by the bytes that were
 * ever put in them. Call it first thing in a process's entry point.
 *
 * The V8 of Node 24 (13.6) counts every byte allocated in an ArrayBuffer since the last
 * mark-compact towards a 64 MB soft limit, dead or alive, and starts a mark-compact of the whole
 * heap each time it is crossed. A process that streams through short-lived buffers — the tunnel's
 * data path moves 100 MB/s through socket reads, SSH packets and WebSocket frames — then marks its
 * whole heap several times a second for buffers that are already garbage: on a log stream that was
 * 35–45% of the server's and the agent's CPU. With this flag external memory is counted in the same
 * global limit as the heap, by what is alive, so buffers that die young are freed by scavenges.
 * Upstream V8 later made this its only behaviour (chromium bug 361124432); the price is that dead
 * buffers are released somewhat later, so a busy process holds more memory between collections.
 */
export function countBuffersInHeapLimit(): void {
  v8.setFlagsFromString(EXTERNAL_MEMORY_IN_GLOBAL_LIMIT);
}
