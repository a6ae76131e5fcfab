import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context, ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';
import { CAPSTAN_VERSION, call } from '../../shared/contracts';
import {
  TunnelEvents, TunnelIdParams, registerLocalTunnels,
  type TunnelClosedEvent, type TunnelClosedResult, type TunnelOpened, type TunnelOpenedEvent, type TunnelRoute, type TunnelStatusInfo,
} from '../../shared/tunnel';
import { ChiselServer } from './chisel-server';
import { DataListener, advertisedHost } from './data-listener';
import { TunnelRegistry } from './registry';
import { TunnelDemand } from './demand';
import type { Log } from './session';

/**
 * `tunnel`: the chisel-compatible reverse-tunnel server on CAPSTAN_TUNNEL_PORT (default 8000).
 * WebSocket upgrades with subprotocol `chisel-v3` carry SSH; an agent logs in with one-time
 * credentials from `openTunnel` and names the tunnel's virtual port in its reverse remote. Other
 * requests get chisel's plain routes (`/health`, `/version`, else 404). Tunnels live in this
 * process's memory, like Portainer's: with several replicas the tunnel port must reach the replica
 * that opened the tunnel. `ensureTunnel` answers the route to the agent: callers in this process
 * open channels directly, others go through the data listener (CAPSTAN_TUNNEL_DATA_*).
 */
export function tunnelService(config: Config): ServiceSchema {
  let server: http.Server | undefined;
  let chisel: ChiselServer | undefined;
  const registry = new TunnelRegistry();
  let demand: TunnelDemand | undefined;
  let reaper: NodeJS.Timeout | undefined;
  let data: DataListener | undefined;
  let dataAddress: TunnelRoute['data'] | undefined;
  let unregisterLocal: (() => void) | undefined;

  return {
    name: 'tunnel',
    actions: {
      /** Where this node's tunnel server listens. */
      address: {
        visibility: 'public',
        handler(): { port: number } {
          return { port: (server?.address() as AddressInfo | null)?.port ?? 0 };
        },
      },
      /** Draws a virtual port and issues one-time credentials for the environment's agent. */
      openTunnel: {
        params: TunnelIdParams,
        handler: (ctx: Context<TunnelIdParams>): TunnelOpened => registry.open(ctx.params.id),
      },
      /** Revokes the credentials, closes the agent's session and frees the port. */
      closeTunnel: {
        params: TunnelIdParams,
        async handler(ctx: Context<TunnelIdParams>): Promise<TunnelClosedResult> {
          const entry = registry.remove(ctx.params.id);
          if (!entry) return { closed: false };
          await entry.session?.close();
          const event: TunnelClosedEvent = { id: entry.id, port: entry.port, reason: 'closed' };
          await ctx.broadcast(TunnelEvents.closed, event);
          return { closed: true };
        },
      },
      /** Opens (or reuses) the environment's tunnel; resolves with its route once the agent's end is connected. */
      ensureTunnel: {
        params: TunnelIdParams,
        async handler(ctx: Context<TunnelIdParams>): Promise<TunnelRoute> {
          if (!demand || !dataAddress) throw new Error('tunnel service is starting');
          const { port, token } = await demand.ensure(ctx.params.id);
          return { port, token, node: this.broker.nodeID, data: dataAddress };
        },
      },
      /** Marks the tunnel in use (the gateway does this while a long request or session is open). */
      touch: {
        params: TunnelIdParams,
        handler(ctx: Context<TunnelIdParams>): { open: boolean } {
          registry.touch(ctx.params.id);
          return { open: registry.status(ctx.params.id).open };
        },
      },
      /** Whether the agent is connected, the virtual port, and the last activity. */
      status: {
        params: TunnelIdParams,
        handler: (ctx: Context<TunnelIdParams>): TunnelStatusInfo => registry.status(ctx.params.id),
      },
    },
    async started() {
      const log = this.logger as unknown as Log;
      server = http.createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/health') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('OK\n');
        if (path === '/version') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(`${CAPSTAN_VERSION}\n`);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      });
      server.requestTimeout = 10_000;
      server.headersTimeout = 5_000;
      server.on('upgrade', (req, socket, head) => {
        if (chisel) return chisel.handleUpgrade(req, socket, head);
        socket.on('error', () => socket.destroy());
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.tunnelPort, config.host, () => resolve());
      });
      this.logger.info({ port: (server.address() as AddressInfo).port }, 'tunnel port reserved');
      data = new DataListener(registry, log);
      const bound = await data.listen(config.tunnelDataHost, config.tunnelDataPort);
      dataAddress = { host: advertisedHost(config.tunnelDataAdvertise, bound.address), port: bound.port };
      unregisterLocal = registerLocalTunnels(this.broker.nodeID, (port, token) => registry.openSocket(port, token));
      this.logger.info({ listen: `${bound.address}:${bound.port}`, advertised: `${dataAddress.host}:${dataAddress.port}` }, 'tunnel data listener ready');

      // The host key lives in state; agents pin its fingerprint from their Edge key.
      await this.broker.waitForServices(['state']);
      const { value: hostKey } = await call(this.broker, 'state.getSecret', { name: 'tunnelPrivateKey' });
      const broker = this.broker;
      const broadcast = (name: string, payload: object) => {
        broker.broadcast(name, payload).catch((err: Error) => log.warn({ err: err.message, event: name }, 'tunnel: event not delivered'));
      };
      chisel = new ChiselServer({
        hostKey,
        registry,
        hooks: {
          log,
          onActivity: (entry) => { entry.lastActivity = Date.now(); },
          onConnected: (entry) => {
            entry.lastActivity = Date.now();
            demand?.connected(entry.id);
            const event: TunnelOpenedEvent = { id: entry.id, port: entry.port };
            broadcast(TunnelEvents.opened, event);
          },
          onEnded: (entry, session, wasConnected) => {
            if (entry.session === session) entry.session = undefined;
            // A closeTunnel already removed the entry and reports the close itself.
            if (!wasConnected || !registry.isCurrent(entry)) return;
            log.info({ id: entry.id, port: entry.port }, 'tunnel: agent session ended');
            demand?.dropped(entry.id);
            const event: TunnelClosedEvent = { id: entry.id, port: entry.port, reason: 'dropped' };
            broadcast(TunnelEvents.closed, event);
          },
        },
      });
      demand = new TunnelDemand(registry, broker, log, config.tunnelIdleMs);
      // Idle tunnels are looked for every 10 s, or more often when the idle limit is short.
      const reapEvery = Math.max(250, Math.min(10_000, Math.floor(config.tunnelIdleMs / 2)));
      let reaping = false;
      reaper = setInterval(() => {
        if (reaping) return;
        reaping = true;
        void demand!.reap().catch((err) => log.warn({ err: (err as Error).message }, 'tunnel: reaping failed')).finally(() => (reaping = false));
      }, reapEvery);
      reaper.unref();
      this.logger.info('tunnel server ready (chisel-v3)');
    },
    async stopped() {
      clearInterval(reaper);
      unregisterLocal?.();
      await data?.close();
      await chisel?.close();
      await Promise.all(registry.all().map((e) => e.session?.close()));
      if (server) await new Promise<void>((r) => server!.close(() => r()));
      chisel = undefined;
    },
  };
}
