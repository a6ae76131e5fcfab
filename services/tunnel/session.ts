import type { Socket } from 'node:net';
import type { Connection } from 'ssh2';
import {
  CHISEL_CHANNEL, CONFIG_REQUEST, CONFIG_TIMEOUT_MS, PING_REQUEST, PONG_PAYLOAD,
  channelAsSocket, channelTarget, decodeConfig, handleGlobalRequests, openChannel, pipeSocketChannel, userAddr,
  type ChannelSocket, type ChiselRemote, type GlobalReply, type SshChannel,
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
  /** The agent's `config` was accepted: the tunnel carries connections now. */
  onConnected(entry: TunnelEntry): void;
  /** The session is over (the SSH connection ended or `close()` was called); `wasConnected` if `onConnected` ran. */
  onEnded(entry: TunnelEntry, session: AgentSession, wasConnected: boolean): void;
  /** Bytes crossed the tunnel. */
  onActivity(entry: TunnelEntry): void;
}

/**
 * One authenticated agent connection, chisel's server handshake from there on: the first global
 * request must be `config` within 10 s; its single remote must be the reverse remote this
 * tunnel's credentials were issued for (`R:0.0.0.0:<port>`, or `R:127.0.0.1:<port>`). The port is
 * virtual: where chisel (and Portainer) would listen on it, the server opens a `chisel` channel
 * to the agent for each connection a caller asks for, in this process (`openSocket`) or through
 * the node's data listener (`forward`). Later `ping` requests get `pong`.
 */
export class AgentSession implements SessionHandle {
  private configured = false;
  private ended = false;
  private target = Buffer.alloc(0);
  private readonly sockets = new Set<Socket>();
  private readonly configTimer: NodeJS.Timeout;

  constructor(private readonly conn: Connection, private readonly entry: TunnelEntry, private readonly hooks: SessionHooks) {
    handleGlobalRequests(conn, (name, payload) => this.onRequest(name, payload));
    this.configTimer = setTimeout(() => {
      hooks.log.info({ id: entry.id }, 'tunnel: no config request within 10 s; closing');
      this.conn.end();
    }, CONFIG_TIMEOUT_MS);
    conn.once('close', () => void this.teardown());
  }

  get connected(): boolean {
    return this.configured && !this.ended;
  }

  /** Ends the SSH connection; resolves once the session is gone. */
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
      this.target = Buffer.from(channelTarget(this.validate(payload)));
      if (this.ended) throw new Error('session ended');
      this.configured = true;
      this.hooks.log.info({ id: this.entry.id, port: this.entry.port, version: decodeConfig(payload).Version || 'unknown' }, 'tunnel: agent connected');
      this.hooks.onConnected(this.entry);
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

  /** A connection for a caller in this process: the channel itself, no TCP. */
  async openSocket(): Promise<ChannelSocket> {
    return channelAsSocket(await this.openChannel(), () => this.hooks.onActivity(this.entry));
  }

  /** Pipes a data listener connection through a new channel, with half-close, once `accepted` ran. */
  async forward(socket: Socket, accepted: () => void): Promise<void> {
    const channel = await this.openChannel();
    if (socket.destroyed || this.ended) {
      channel.close();
      if (this.ended) throw new Error('the tunnel session has ended');
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    accepted();
    void pipeSocketChannel(socket, channel, () => this.hooks.onActivity(this.entry));
  }

  private openChannel(): Promise<SshChannel> {
    if (!this.connected) return Promise.reject(new Error('the tunnel session has ended'));
    this.hooks.onActivity(this.entry);
    return openChannel(this.conn, CHISEL_CHANNEL, this.target);
  }

  private teardownDone?: Promise<void>;
  private teardown(): Promise<void> {
    this.teardownDone ??= (async () => {
      this.ended = true;
      clearTimeout(this.configTimer);
      // Channels close with the connection, which may wait on a dead peer: do not let callers wait too.
      for (const s of this.sockets) s.destroy();
      this.conn.end();
      this.hooks.onEnded(this.entry, this, this.configured);
    })();
    return this.teardownDone;
  }
}
