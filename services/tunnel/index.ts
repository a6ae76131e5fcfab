import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceSchema } from 'moleculer';
import type { Config } from '../../shared/config';
import { CAPSTAN_VERSION } from '../../shared/contracts';

/**
 * `tunnel`: the reverse-tunnel server on CAPSTAN_TUNNEL_PORT (default 8000). The edge-agent issue
 * adds the chisel-compatible SSH-over-WebSocket upgrade; this part holds the port and answers the
 * same plain HTTP routes as chisel does for non-WebSocket requests (`/health`, `/version`, else 404),
 * so load balancers and the Helm chart can probe it from day one.
 */
export function tunnelService(config: Config): ServiceSchema {
  let server: http.Server | undefined;
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
    },
    async started() {
      server = http.createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/health') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('OK\n');
        if (path === '/version') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(`${CAPSTAN_VERSION}\n`);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      });
      server.requestTimeout = 10_000;
      server.headersTimeout = 5_000;
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.tunnelPort, config.host, () => resolve());
      });
      this.logger.info({ port: (server.address() as AddressInfo).port }, 'tunnel port reserved');
    },
    async stopped() {
      if (server) await new Promise<void>((r) => server!.close(() => r()));
    },
  };
}
