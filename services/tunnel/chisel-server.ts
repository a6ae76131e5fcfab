import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as SshServer, type Connection } from 'ssh2';
import WebSocket, { WebSocketServer } from 'ws';
import { CHISEL_SUBPROTOCOL, SERVER_IDENT, WebSocketDuplex, setRemoteIdent, socketOf } from '../../shared/tunnel';
import type { TunnelEntry, TunnelRegistry } from './registry';
import { AgentSession, type SessionHooks } from './session';

/** Options of {@link ChiselServer}. */
export interface ChiselServerOptions {
  /** The server's SSH host key: PEM, ECDSA P-256 (SEC1) as state keeps it. */
  hostKey: string;
  registry: TunnelRegistry;
  hooks: SessionHooks;
  /** Time from the upgrade to a successful SSH login (default 15 s). */
  authTimeoutMs?: number;
  /** WebSocket ping period; a peer that misses two is dropped (default 10 s: a dead host is noticed within 20 s). */
  heartbeatMs?: number;
}

// SSH packets stay under 35 kB; Go's SSH writes one packet per WebSocket message.
const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * The chisel v3 server side: WebSocket upgrades asking for `chisel-v3` carry an SSH connection
 * (server ident `SSH-2.0-chisel-v3-server`, host key pinned by agents through its fingerprint),
 * authenticated by password against the registry's one-time credentials. What happens after the
 * login is {@link AgentSession}'s part.
 */
export class ChiselServer {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES, clientTracking: true });
  private readonly ssh: SshServer;
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly opts: ChiselServerOptions) {
    this.ssh = new SshServer({
      hostKeys: [opts.hostKey],
      ident: SERVER_IDENT,
      // ssh2 pings clients with keepalive@openssh.com and drops them after N unanswered; a chisel
      // client never answers unknown requests, so the ping stays (it refreshes NAT state) but never
      // drops anyone. Liveness is the WebSocket heartbeat, which every client answers.
      keepaliveInterval: 15_000,
      keepaliveCountMax: Number.MAX_SAFE_INTEGER,
    }, (conn) => this.onConnection(conn));
    const period = opts.heartbeatMs ?? 10_000;
    this.heartbeat = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (this.alive.get(ws) === false) { ws.terminate(); continue; }
        this.alive.set(ws, false);
        ws.ping();
      }
    }, period);
    this.heartbeat.unref();
  }

  /** The HTTP server's `upgrade` listener. Anything but a `chisel-v3` WebSocket gets a 400. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || !offered.includes(CHISEL_SUBPROTOCOL)) {
      const body = `expected WebSocket subprotocol ${CHISEL_SUBPROTOCOL}\n`;
      socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onWebSocket(ws));
  }

  /** Drops every connection (their sessions end). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }

  private onWebSocket(ws: WebSocket): void {
    // handleProtocols' default picks the first offered protocol; chisel offers only one.
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.on('message', () => this.alive.set(ws, true));
    const duplex = new WebSocketDuplex(ws, { identCompat: true });
    duplex.on('error', () => undefined);
    const timer = setTimeout(() => duplex.destroy(), this.opts.authTimeoutMs ?? 15_000);
    (duplex as WebSocketDuplex & { authTimer?: NodeJS.Timeout }).authTimer = timer;
    duplex.once('close', () => clearTimeout(timer));
    this.ssh.injectSocket(duplex as unknown as Socket);
  }

  private onConnection(conn: Connection): void {
    const duplex = socketOf(conn) as (WebSocketDuplex & { authTimer?: NodeJS.Timeout }) | undefined;
    // Go clients say `SSH-chisel-v3-client`; the transport rewrote it for ssh2's parser.
    if (duplex?.originalIdent) setRemoteIdent(conn, duplex.originalIdent);
    const log = this.opts.hooks.log;
    let entry: TunnelEntry | undefined;
    conn.on('error', (err: Error) => log.debug({ err: err.message }, 'tunnel: SSH connection error'));
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'password') return ctx.reject(['password']);
      const found = this.opts.registry.login(ctx.username, ctx.password);
      if (!found) {
        log.info('tunnel: login refused (unknown, revoked or already used credentials)');
        return ctx.reject(['password']);
      }
      entry = found;
      ctx.accept();
    });
    conn.on('ready', () => {
      clearTimeout(duplex?.authTimer);
      if (!entry || !this.opts.registry.isCurrent(entry)) return void conn.end();
      entry.session = new AgentSession(conn, entry, this.opts.hooks);
    });
  }
}
