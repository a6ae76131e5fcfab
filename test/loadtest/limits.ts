/**
 * Whether a run fits this machine before anything starts: open files (per process, a hard limit
 * here) and source ports (per destination address). A run that does not fit is refused with what
 * to use instead, rather than failing half-way with EMFILE or EADDRNOTAVAIL. (Tunnels take no port
 * of the machine: their ports are virtual, 64,512 per tunnel node.)
 */
import fs from 'node:fs';
import type { LoadTestOptions } from './options';
import { AGENTS_PER_PROCESS, type WorkerPlan } from './workers';

/** What this machine allows a run. */
export interface HostLimits {
  /** Open-file limit of this process; the tester's worker processes and the servers it starts inherit it. */
  openFiles: number;
  /**
   * Connections from one address to one ip:port at once: the kernel's ephemeral range (a port may
   * serve several destinations, so each gateway port has the whole range).
   */
  sourcePorts: number;
}

/** Open files a process needs besides its agents' sockets (libraries, pipes, the API client). */
const FD_SPARE = 512;
/** Open files a gateway needs besides its agents' sockets (NATS, Redis, log, its own clients). */
const GATEWAY_FD_SPARE = 1000;
/**
 * Source ports kept free per destination besides one per agent: the poll connections an agent
 * closes when its push channel opens sit in TIME_WAIT (reused after a second on loopback with
 * tcp_tw_reuse 2, the default), reconnections, the API client's and the REQUIRED calls' connections.
 */
const PORT_SPARE = 1000;

/** This process's open-file limit (the embedded server inherits it). */
export function openFileLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return Infinity;
  }
}

/** The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), or null where it cannot be read. */
export function readEphemeralRange(): [number, number] | null {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? [lo, hi] : null;
  } catch {
    return null;
  }
}

export function hostLimits(): HostLimits {
  const ephemeral = readEphemeralRange();
  return { openFiles: openFileLimit(), sourcePorts: ephemeral ? ephemeral[1] - ephemeral[0] + 1 : Infinity };
}

/** Gateways enough for `agents` under these limits (at least 2, and the default split of AGENTS_PER_PROCESS). */
export function gatewaysFor(agents: number, l: HostLimits): number {
  return Math.max(2, Math.ceil(agents / AGENTS_PER_PROCESS), Math.ceil(agents / (l.openFiles - GATEWAY_FD_SPARE)), Math.ceil(agents / (l.sourcePorts - PORT_SPARE)));
}

/**
 * Why this run cannot work here, and what to use instead; undefined when it fits. Each agent holds
 * one socket in the tester process running it and one in the gateway it talks to, from a source
 * port of its own towards that gateway's port; a storm adds three sockets per tunnel.
 */
export function misfit(opts: LoadTestOptions, plan: WorkerPlan, l: HostLimits): string | undefined {
  const stormFds = 3 * opts.storm;
  const need = (plan.kind === 'thread' ? opts.agents : plan.perWorker) + stormFds + FD_SPARE;
  if (l.openFiles < need) {
    return `the open-file limit is ${l.openFiles}, below the ${need} a tester process of this run needs (one socket per agent${opts.storm ? ', three per storm tunnel' : ''}, ${plan.kind === 'thread' ? `${opts.agents} agents in one process` : `${plan.perWorker} agents in each of ${plan.count} processes`}): run it through npm run loadtest, which raises it with ulimit -n up to the hard limit, or raise it yourself, or spread the agents over more processes (--processes)`;
  }
  const distributed = opts.shape === 'distributed';
  const gateways = distributed ? opts.gateways : 1;
  const perGateway = Math.ceil(opts.agents / gateways);
  if (!opts.target) {
    // The server processes the tester starts inherit its limit (the npm script's ulimit -n, at most the hard limit).
    const fds = perGateway + (distributed ? 0 : stormFds) + GATEWAY_FD_SPARE;
    if (fds > l.openFiles) {
      return distributed
        ? `each gateway holds one socket per agent it serves: ${opts.agents} agents over ${gateways} gateways need about ${fds} open files in each, above the open-file limit of ${l.openFiles}: use --gateways ${Math.max(gateways + 1, gatewaysFor(opts.agents, l))}`
        : `the embedded server is one process holding one socket per agent: ${opts.agents} agents need about ${fds} open files in it, above its open-file limit of ${l.openFiles} (inherited from the tester: ulimit -Hn caps it, and it cannot be raised here), so it cannot hold more than about ${l.openFiles - GATEWAY_FD_SPARE} agents. Spread them over gateway processes: --shape distributed --gateways ${gatewaysFor(opts.agents, l)}`;
    }
  }
  if (perGateway + PORT_SPARE > l.sourcePorts) {
    const where = distributed ? `${gateways} gateway ports` : opts.target ? `the one address of ${opts.target}` : 'the embedded server\'s one port';
    return `every agent connects from its own source port: ${opts.agents} agents over ${where} need ${perGateway} (+${PORT_SPARE} spare) towards each, more than the ${l.sourcePorts} of the kernel's ephemeral range (net.ipv4.ip_local_port_range): ${opts.target ? 'run fewer agents against one address' : `use --shape distributed --gateways ${Math.max(distributed ? gateways + 1 : 2, gatewaysFor(opts.agents, l))}`}`;
  }
  return undefined;
}
