import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ChannelSocket } from './channel-socket';
import type { TunnelRoute } from './contracts';
import { dialTunnel } from './data-path';

/**
 * Opens one connection to the agent of the tunnel named by its virtual `port`, if `token` is that
 * tunnel's: an SSH channel ready for node:http. Rejects otherwise.
 */
export type ChannelOpener = (port: number, token: string) => Promise<ChannelSocket>;

const local = new Map<string, ChannelOpener>();

/**
 * Records that the tunnel node `node` runs in this very process, and how to open channels to its
 * agents directly. A caller in the same process (the gateway and the snapshots service in the
 * embedded shape) then skips the data listener, a TCP connection through the kernel each way,
 * while a caller elsewhere still connects to it. Returns the function that takes the record back.
 */
export function registerLocalTunnels(node: string, open: ChannelOpener): () => void {
  local.set(node, open);
  return () => {
    if (local.get(node) === open) local.delete(node);
  };
}

/** The opener of tunnel node `node`, when it runs in this process. */
export function localTunnels(node: string): ChannelOpener | undefined {
  return local.get(node);
}

/** Request options that send an HTTP request to the agent behind `route` with `agent`. */
export interface TunnelTarget {
  /** The Host the agent sees is Portainer's, `127.0.0.1:<port>`; where the bytes go is the agent's business. */
  host: string;
  port: number;
  agent: TunnelHttpAgent;
  tunnel: TunnelRoute;
}

/** Where to send requests for the agent behind `route` (spread into `http.request` options). */
export function tunnelTarget(route: TunnelRoute, agent: TunnelHttpAgent = tunnelHttpAgent): TunnelTarget {
  return { host: '127.0.0.1', port: route.port, agent, tunnel: route };
}

/**
 * The HTTP agent for requests to agents through tunnels ({@link tunnelTarget}'s options): a tunnel
 * whose node runs in this process is reached over an SSH channel opened directly, any other over
 * its node's data listener. Keep-alive pools connections per tunnel (node, port and token: virtual
 * ports are unique per node only, and a port's next tunnel has another token), so one channel
 * carries many requests either way. Requests without a tunnel are plain HTTP.
 */
export class TunnelHttpAgent extends http.Agent {
  override getName(options?: http.ClientRequestArgs & { tunnel?: TunnelRoute }): string {
    const t = options?.tunnel;
    return t ? `tunnel:${t.node}:${t.port}:${t.token}` : super.getName(options);
  }

  override createConnection(options: http.ClientRequestArgs & { tunnel?: TunnelRoute }, cb?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const t = options.tunnel;
    if (!t || !cb) return super.createConnection(options, cb);
    const open = localTunnels(t.node);
    (open ? open(t.port, t.token) : dialTunnel(t)).then((socket) => cb(null, socket), (err: Error) => cb(err, undefined as never));
    return undefined;
  }
}

/**
 * The process's agent for Docker calls through tunnels, with the keep-alive settings of Node's
 * global agent, which carried them before.
 */
export const tunnelHttpAgent = new TunnelHttpAgent({ keepAlive: true, timeout: 5000, scheduling: 'lifo' });
