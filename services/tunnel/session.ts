import net from 'node:net';
import type { Connection } from 'ssh2';
import {
  CHISEL_CHANNEL, CONFIG_REQUEST, CONFIG_TIMEOUT_MS, PING_REQUEST, PONG_PAYLOAD,
  channelAsSocket, channelTarget, decodeConfig, handleGlobalRequests, openChannel, pipeSocketChannel, registerLocalTunnel, userAddr,
  type ChannelSocket, type ChiselRemote, type GlobalReply,
} from '../../shared/tunnel';
import type { SessionHandle, TunnelEntry } from './registry';

/** Logger surface the tunnel code uses (Moleculer's and pino's both fit). */
export interface Log {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  debug(...args: unknown[]): void;
}

/** Hooks from a session back to the service. */
export interface SessionHooks {
  log: Log;
  /** The reverse listener is up. */
  onListening(entry: TunnelEntry): void;
  /** The session is over (the SSH connection ended or `close()` was called); `wasListening` if `onListening` ran. */
  onEnded(entry: TunnelEntry, session: AgentSession, wasListening: boolean): void;
  /** Bytes crossed the tunnel. */
  onActivity(entry: TunnelEntry): void;
  /** The tunnel's port was taken by something else between its allocation and the agent's login. */
  onPortTaken(entry: TunnelEntry): void;
}

/**
 * One authenticated agent connection, chisel's server handshake from there on: the first global
 * request must be `config` within 10 s; its single remote must be the reverse remote this
 * tunnel's credentials were issued for (`R:0.0.0.0:<port>`, or `R:127.0.0.1:<port>`); then the
 * server listens on 127.0.0.1:<port> (never 0.0.0.0, unlike Portainer) and opens a `chisel`
 * channel to the agent for every accepted TCP connection. Callers in this process skip the
 * listener: they open channels directly (see shared/tunnel/local.ts). Later `ping` requests get
 * `pong`.
 */
export class AgentSession implements SessionHandle {
  private listener?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private configured = false;
  private ended = false;
  private unregisterLocal?: () => void;
  private readonly configTimer: NodeJS.Timeout;

  constructor(private readonly conn: Connection, private readonly entry: TunnelEntry, private readonly hooks: SessionHooks) {
    handleGlobalRequests(conn, (name, payload) => this.onRequest(name, payload));
    this.configTimer = setTimeout(() => {
      hooks.log.info({ id: entry.id }, 'tunnel: no config request within 10 s; closing');
      this.conn.end();
    }, CONFIG_TIMEOUT_MS);
    conn.once('close', () => void this.teardown());
  }

  get listening(): boolean {
    return !!this.listener?.listening && !this.ended;
  }

  /** Ends the SSH connection and the listener; resolves once the port is released. */
  close(): Promise<void> {
    return this.teardown();
  }

  private async onRequest(name: string, payload: Buffer): Promise<GlobalReply> {
    if (this.configured) {
      return name === PING_REQUEST ? { ok: true, data: Buffer.from(PONG_PAYLOAD) } : { ok: false };
    }
    clearTimeout(this.configTimer);
    try {
      if (name !== CONFIG_REQUEST) throw new Error('expecting config request');
      const remote = this.validate(payload);
      await this.listen(remote).catch((err: Error) => {
        this.hooks.onPortTaken(this.entry);
        throw err;
      });
      this.configured = true;
      this.hooks.log.info({ id: this.entry.id, port: this.entry.port, version: decodeConfig(payload).Version || 'unknown' }, 'tunnel: agent connected');
      this.hooks.onListening(this.entry);
      return { ok: true };
    } catch (err) {
      this.hooks.log.info({ id: this.entry.id, reason: (err as Error).message }, 'tunnel: config refused');
      // A chisel client reads a failure without text as success, so the connection goes too.
      setImmediate(() => this.conn.end());
      return { ok: false, data: Buffer.from((err as Error).message) };
    }
  }

  private validate(payload: Buffer): ChiselRemote {
    const { Remotes } = decodeConfig(payload);
    if (Remotes.length !== 1) throw new Error(`expecting exactly one remote, got ${Remotes.length}`);
    const r = Remotes[0];
    const addr = userAddr(r);
    const allowed = [`R:0.0.0.0:${this.entry.port}`, `R:127.0.0.1:${this.entry.port}`];
    if (!allowed.includes(addr) || r.Socks || r.Stdio || r.LocalProto !== 'tcp') throw new Error(`access to '${addr}' denied`);
    return r;
  }

  private listen(remote: ChiselRemote): Promise<void> {
    const target = Buffer.from(channelTarget(remote));
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.forward(socket, target));
    return new Promise((resolve, reject) => {
      server.once('error', () => reject(new Error(`Server cannot listen on R:127.0.0.1:${this.entry.port}`)));
      server.listen({ port: this.entry.port, host: '127.0.0.1', exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.hooks.log.warn({ id: this.entry.id, err: err.message }, 'tunnel: listener error'));
        if (this.ended) { server.close(); return reject(new Error('session ended')); }
        this.listener = server;
        this.unregisterLocal = registerLocalTunnel(this.entry.port, () => this.openLocal(target));
        resolve();
      });
    });
  }

  private forward(socket: net.Socket, target: Buffer): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    this.hooks.onActivity(this.entry);
    openChannel(this.conn, CHISEL_CHANNEL, target).then(
      (channel) => pipeSocketChannel(socket, channel, () => this.hooks.onActivity(this.entry)),
      (err: Error) => {
        this.hooks.log.debug({ id: this.entry.id, err: err.message }, 'tunnel: agent refused the connection');
        socket.destroy();
      },
    );
  }

  /** A connection for a caller in this process: the channel itself, no listener, no TCP. */
  private async openLocal(target: Buffer): Promise<ChannelSocket> {
    if (this.ended) throw new Error('the tunnel session has ended');
    this.hooks.onActivity(this.entry);
    const channel = await openChannel(this.conn, CHISEL_CHANNEL, target);
    return channelAsSocket(channel, () => this.hooks.onActivity(this.entry));
  }

  private teardownDone?: Promise<void>;
  private teardown(): Promise<void> {
    this.teardownDone ??= (async () => {
      this.ended = true;
      this.unregisterLocal?.();
      clearTimeout(this.configTimer);
      for (const s of this.sockets) s.destroy();
      this.conn.end();
      const listener = this.listener;
      if (listener) await new Promise<void>((r) => listener.close(() => r()));
      this.hooks.onEnded(this.entry, this, this.configured);
    })();
    return this.teardownDone;
  }
}
