import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ChannelSocket } from './channel-socket';

/** Opens one connection to the agent's end of a tunnel: an SSH channel ready for node:http. */
export type ChannelOpener = () => Promise<ChannelSocket>;

const local = new Map<number, ChannelOpener>();

/**
 * Records that the reverse listener 127.0.0.1:`port` belongs to a tunnel held by this very
 * process, and how to open a channel to its agent directly. A caller in the same process (the
 * gateway and the snapshots service in the embedded shape) then skips the loopback TCP connection
 * — a write, a read and a copy through the kernel each way — while a caller elsewhere still
 * reaches the listener over TCP. Returns the function that takes the record back.
 */
export function registerLocalTunnel(port: number, open: ChannelOpener): () => void {
  local.set(port, open);
  return () => {
    if (local.get(port) === open) local.delete(port);
  };
}

/** The opener of the tunnel listening on `host`:`port`, when that tunnel is held by this process. */
export function localTunnel(host: string | null | undefined, port: number | string | null | undefined): ChannelOpener | undefined {
  return host === '127.0.0.1' || host === 'localhost' ? local.get(Number(port)) : undefined;
}

/**
 * The HTTP agent for requests to a tunnel's address (`tunnel.ensureTunnel`'s answer): a tunnel
 * held by this process is reached over an SSH channel opened directly, any other over TCP to its
 * listener as before. Keep-alive pools both kinds alike, so one channel carries many requests just
 * as one TCP connection through the listener did.
 */
export class TunnelHttpAgent extends http.Agent {
  override createConnection(options: http.ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const open = localTunnel(options.host ?? options.hostname, options.port);
    if (!open || !cb) return super.createConnection(options, cb);
    open().then((channel) => cb(null, channel), (err: Error) => cb(err, undefined as never));
    return undefined;
  }
}

/**
 * The process's agent for Docker calls through tunnels, with the keep-alive settings of Node's
 * global agent, which carried them before.
 */
export const tunnelHttpAgent = new TunnelHttpAgent({ keepAlive: true, timeout: 5000, scheduling: 'lifo' });
