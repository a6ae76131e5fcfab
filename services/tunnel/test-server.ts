import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openTunnel, type OpenTunnelOptions, type Tunnel } from '../../agent/tunnel';
import { generateTunnelKey, tunnelFingerprint } from '../../shared/crypto';
import type { TunnelRoute } from '../../shared/tunnel';
import { ChiselServer } from './chisel-server';
import { DataListener } from './data-listener';
import { TunnelRegistry } from './registry';
import type { SessionHooks } from './session';
import { routeOf } from './test-fixtures';

/** A tunnel node without the service around it, for tests: the real server pieces on loopback. */
export interface TestTunnelServer {
  registry: TunnelRegistry;
  /** Agents' address (`host:port`) and the fingerprint they pin. */
  serverAddr: string;
  fingerprint: string;
  /** The HTTP server agents upgrade on (the agents' port). */
  server: http.Server;
  /** The node's data listener. */
  data: TunnelRoute['data'];
  /** Opens environment `id`'s tunnel, connects an agent client to it, and answers the route a node `node` would give. */
  connect(id: number, node: string, opts: Pick<OpenTunnelOptions, 'targetPort'> & Partial<OpenTunnelOptions>): Promise<{ tunnel: Tunnel; route: TunnelRoute }>;
  /** Closes the agent clients it connected, the server, its sessions and the data listener. */
  close(): Promise<void>;
}

const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };

/** Starts a registry, a chisel server and a data listener on free loopback ports; `hooks` replace the silent defaults. */
export async function startTunnelServer(hooks: Partial<SessionHooks> = {}): Promise<TestTunnelServer> {
  const key = generateTunnelKey();
  const registry = new TunnelRegistry();
  const chisel = new ChiselServer({
    hostKey: key, registry, hooks: { log: quiet, onActivity: () => undefined, onConnected: () => undefined, onEnded: () => undefined, ...hooks },
  });
  const server = http.createServer();
  server.on('upgrade', (req, socket, head) => chisel.handleUpgrade(req, socket, head));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const listener = new DataListener(registry, quiet);
  const data = { host: '127.0.0.1', port: (await listener.listen('127.0.0.1', 0)).port };
  const serverAddr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fingerprint = tunnelFingerprint(key);
  const tunnels: Tunnel[] = [];
  return {
    registry, serverAddr, fingerprint, server, data,
    async connect(id, node, opts) {
      const { port, credentials } = registry.open(id);
      const tunnel = await openTunnel({ serverAddr, fingerprint, credentials, remotePort: port, targetHost: '127.0.0.1', ...opts });
      tunnels.push(tunnel);
      return { tunnel, route: routeOf(registry, id, node, data) };
    },
    async close() {
      await Promise.all(tunnels.map((t) => t.close()));
      await listener.close();
      await chisel.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
