import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** Takes an upgrade request whose path matched; it owns the socket from then on. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, match: RegExpExecArray) => void;

interface UpgradeRoute {
  pattern: RegExp;
  handler: UpgradeHandler;
}

const routesOf = new WeakMap<Server, UpgradeRoute[]>();

/** Ends an upgrade request with an HTTP error in Portainer's `{message, details}` shape. */
export function upgradeError(socket: Duplex, status: number, message: string, details?: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ message, details });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const reason = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Error';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`);
}

/**
 * Adds an upgrade route to the server. The server gets one `upgrade` listener that hands each
 * request to the first route whose pattern matches its URL (path and query), and answers 404 to
 * the rest: route areas (the Docker proxy's attach/exec, the agents' push channel) register their
 * own paths and never see each other's requests.
 */
export function addUpgradeRoute(server: Server, pattern: RegExp, handler: UpgradeHandler): void {
  let routes = routesOf.get(server);
  if (!routes) {
    const list: UpgradeRoute[] = [];
    routes = list;
    routesOf.set(server, list);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // A client resetting while a handler is still deciding must not crash the process.
      socket.on('error', () => undefined);
      const url = req.url ?? '';
      for (const r of list) {
        const m = r.pattern.exec(url);
        if (m) return r.handler(req, socket, head, m);
      }
      upgradeError(socket, 404, 'Not found');
    });
  }
  routes.push({ pattern, handler });
}
