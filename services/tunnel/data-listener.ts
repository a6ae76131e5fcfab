import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { DATA_OK, DATA_TIMEOUT_MS, parsePreamble, readLine } from '../../shared/tunnel';
import type { TunnelRegistry } from './registry';
import type { Log } from './session';

/**
 * The tunnel node's internal data listener (CAPSTAN_TUNNEL_DATA_HOST/PORT): how a gateway or a
 * snapshots service in another process, possibly on another host, reaches an agent. A connection
 * names a tunnel by its virtual port and proves it may use it with the tunnel's token (the wire is
 * in shared/tunnel/data-path.ts); only then is a `chisel` channel opened and the connection piped
 * through it with half-close. Anything else is answered `ERR` and closed without opening a channel.
 * It is a listener of its own, never the agents' tunnel port: agents have no business here.
 */
export class DataListener {
  private readonly server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => void this.accept(socket));
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly registry: TunnelRegistry, private readonly log: Log) {
    this.server.on('error', (err) => log.warn({ err: err.message }, 'tunnel: data listener error'));
  }

  /** Starts listening; the address it got (port 0 picks a free one). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops listening and drops every connection. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private async accept(socket: net.Socket): Promise<void> {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const onTimeout = () => socket.destroy();
    socket.setTimeout(DATA_TIMEOUT_MS, onTimeout);
    const wanted = parsePreamble(await readLine(socket).catch(() => ''));
    if (!wanted) return refuse(socket, 'malformed preamble');
    const entry = this.registry.authorize(wanted.port, wanted.token);
    if (!entry) {
      this.log.info({ port: wanted.port, from: socket.remoteAddress }, 'tunnel: data connection refused (no connected tunnel with that port and token)');
      return refuse(socket, 'unknown tunnel or wrong token');
    }
    await entry.session.forward(socket, () => {
      socket.setTimeout(0);
      socket.off('timeout', onTimeout);
      socket.write(`${DATA_OK}\n`);
    }).catch((err: Error) => {
      this.log.debug({ id: entry.id, err: err.message }, 'tunnel: agent refused a data connection');
      refuse(socket, 'the agent did not accept the connection');
    });
  }
}

function refuse(socket: net.Socket, reason: string): void {
  if (!socket.destroyed) socket.end(`ERR ${reason}\n`);
}

/**
 * The host others use to reach the data listener: `advertise` when set; else the address it is
 * bound to; for a wildcard bind, this host's first external IPv4 address (a pod's or a
 * container's own), or its name when it has none.
 */
export function advertisedHost(advertise: string, bound: string, interfaces = os.networkInterfaces()): string {
  if (advertise) return advertise;
  if (!['0.0.0.0', '::', ''].includes(bound)) return bound;
  for (const list of Object.values(interfaces)) {
    const external = list?.find((a) => a.family === 'IPv4' && !a.internal);
    if (external) return external.address;
  }
  return os.hostname();
}
