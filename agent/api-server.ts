import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { proxyRequest, proxyUpgrade } from '../shared/http';
import { dockerTarget } from './docker';

/** Decides whether a request may reach the engine: null to allow, else why not (answered 403). */
export type RequestVerifier = (headers: http.IncomingHttpHeaders) => string | null;

export interface AgentApiOptions {
  dockerHost: string;
  agentVersion: string;
  verify: RequestVerifier;
  /** Every request and every byte of a hijacked session counts as activity (inactivity timeout). */
  onActivity?: () => void;
  /** Open requests (logs -f, events) and interactive sessions (attach, exec) keep the tunnel open while they last. */
  onSession?: (delta: 1 | -1) => void;
}

export interface AgentApi {
  port: number;
  /** Serves a connection that did not come through the port: a tunnel channel, say. */
  serve(socket: Duplex): void;
  close(): Promise<void>;
}

const AGENT_HEADERS = (version: string) => ({ 'Portainer-Agent': version, 'Portainer-Agent-API-Version': '2', 'Portainer-Agent-Platform': '1' });

function deny(res: http.ServerResponse, version: string, message: string) {
  res.writeHead(403, { 'content-type': 'application/json', ...AGENT_HEADERS(version) }).end(JSON.stringify({ message, details: message }));
}

/**
 * The agent's API behind the tunnel (reference 3.1, 3.3): `/ping` answers 204 unsigned; every
 * other request must carry the server's signature and is streamed to the local Docker engine,
 * including hijacked attach/exec connections. The tunnel hands it its channels as connections
 * (`serve`); the port it also opens is on 127.0.0.1 only.
 */
export async function startAgentApi(opts: AgentApiOptions): Promise<AgentApi> {
  const target = dockerTarget(opts.dockerHost) as { socketPath: string } | { host: string; port: number };
  const server = http.createServer((req, res) => {
    opts.onActivity?.();
    if ((req.url ?? '/').split('?')[0] === '/ping') {
      res.writeHead(204, AGENT_HEADERS(opts.agentVersion)).end();
      return;
    }
    const why = opts.verify(req.headers);
    if (why) return deny(res, opts.agentVersion, why);
    for (const [k, v] of Object.entries(AGENT_HEADERS(opts.agentVersion))) res.setHeader(k, v);
    // A quiet `logs -f` or `events` stream is use of the tunnel for as long as it stays open.
    opts.onSession?.(1);
    res.once('close', () => opts.onSession?.(-1));
    proxyRequest(req, res, target, { headers: {} });
  });
  server.on('upgrade', (req, socket, head) => {
    opts.onActivity?.();
    const why = opts.verify(req.headers);
    if (why) {
      const body = JSON.stringify({ message: why, details: why });
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    proxyUpgrade(req, socket, head, target, { onOpen: () => opts.onSession?.(1), onClose: () => opts.onSession?.(-1) });
  });
  // Long streams (logs -f, events, attach) must not be cut by Node's default request timeouts.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    serve: (socket) => void server.emit('connection', socket),
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
