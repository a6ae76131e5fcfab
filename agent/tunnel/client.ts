import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Client } from 'ssh2';
import WebSocket from 'ws';
import {
  CHISEL_CHANNEL, CHISEL_SUBPROTOCOL, CLIENT_IDENT, CONFIG_REQUEST, FINGERPRINT_MISMATCH, OPEN_FAILURE,
  WebSocketDuplex, acceptChannels, channelAsSocket, decodeRemote, encodeConfig, fingerprintMatches, pipeSocketChannel,
  restoreRemoteIdentOnHeader, sendGlobalRequest, type ChannelSocket, type IncomingChannel,
} from '../../shared/tunnel';
import { keepalive, parseServerUrl, withTimeout } from './helpers';

/** Options of {@link openTunnel}; the names follow the Edge key and the poll reply. */
export interface OpenTunnelOptions {
  /** Tunnel server, `host:port` from the Edge key (plain `ws://`, as chisel does); a `ws(s)://` or `http(s)://` URL also works. */
  serverAddr: string;
  /** Pinned server key fingerprint from the Edge key (SHA-256 base64, or legacy MD5 hex). */
  fingerprint: string;
  /** One-time `user:pass` from the poll reply, already decrypted. */
  credentials: string;
  /** Port the server listens on for this tunnel (`R:<remotePort>:...`). */
  remotePort: number;
  /** Where tunnelled connections go: the agent's own API. The only target this client ever dials. */
  targetHost: string;
  targetPort: number;
  /**
   * Serves tunnelled connections in this process instead of dialling the target: each channel,
   * dressed as a socket (see shared/tunnel `channelAsSocket`), goes straight to it, e.g. to an HTTP
   * server's `emit('connection')`. The target still names the remote in the `config` request.
   */
  serve?: (socket: ChannelSocket) => void;
  /** Period of SSH `ping` requests; a ping unanswered for as long closes the tunnel. 0 turns them off. Default 25 s, chisel's. */
  keepaliveMs?: number;
  /** Budget for WebSocket upgrade, SSH handshake, login and config (default 30 s). */
  connectTimeoutMs?: number;
  /** How often at most an `activity` event is emitted while bytes flow (default 1 s). */
  activityIntervalMs?: number;
  /** Version string sent in the config request (chisel only logs it). */
  version?: string;
}

/** Traffic through the tunnel so far; `lastActivity` is ms since epoch. */
export interface TunnelActivity {
  /** Bytes from the server to the target. */
  bytesIn: number;
  /** Bytes from the target back to the server. */
  bytesOut: number;
  /** Connections the server forwarded. */
  connections: number;
  lastActivity: number;
}

/** Why a tunnel ended: `closed` by `close()`, or an `error` (drop, keepalive timeout, server close). */
export interface TunnelEnd { reason: 'closed' | 'error'; error?: Error }

/**
 * An open tunnel. Emits `activity` ({@link TunnelActivity}) at most every `activityIntervalMs`
 * while bytes flow or connections arrive, so the agent can close it after a period of inactivity.
 */
export interface Tunnel extends EventEmitter {
  readonly activity: Readonly<TunnelActivity>;
  /** Resolves when the tunnel is gone, for whatever reason. Never rejects. */
  readonly closed: Promise<TunnelEnd>;
  /** Closes the SSH connection and every forwarded connection; resolves when closed. */
  close(): Promise<TunnelEnd>;
}

/**
 * Opens a chisel v3 reverse tunnel: WebSocket with subprotocol `chisel-v3`, SSH over it with the
 * server key pinned and password login, then the `config` request with `R:<remotePort>:<target>`.
 * Resolves once the server accepted the config (it then listens on its side); rejects with
 * "tunnel server fingerprint mismatch", a refused login or a refused config otherwise.
 */
export async function openTunnel(opts: OpenTunnelOptions): Promise<Tunnel> {
  const sep = opts.credentials.indexOf(':');
  if (sep < 1) throw new Error('tunnel credentials must be "user:pass"');
  const remote = decodeRemote(`R:${opts.remotePort}:${opts.targetHost.includes(':') ? `[${opts.targetHost}]` : opts.targetHost}:${opts.targetPort}`);
  const budget = opts.connectTimeoutMs ?? 30_000;
  const deadline = Date.now() + budget;

  const ws = new WebSocket(parseServerUrl(opts.serverAddr), CHISEL_SUBPROTOCOL, {
    perMessageDeflate: false, handshakeTimeout: budget, maxPayload: 1024 * 1024,
    // An all-zero mask: ws then neither masks here nor unmasks on the server, which was the
    // agent's largest CPU cost on bulk transfers. Masking guards browsers against proxies that
    // could be fooled by attacker-chosen bytes; these bytes are SSH ciphertext.
    generateMask: (mask: Buffer) => void mask.fill(0),
  });
  // Wrap at once: the server's first message can arrive in the same read as the upgrade answer.
  const duplex = new WebSocketDuplex(ws, { identCompat: true });
  duplex.on('error', () => undefined);
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', (err) => reject(new Error(`tunnel server unreachable: ${err.message}`, { cause: err })));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`tunnel server answered HTTP ${res.statusCode} to the WebSocket upgrade`)));
  }), budget, 'tunnel WebSocket upgrade timed out').catch((err) => { ws.terminate(); throw err; });

  const client = new Client();
  let mismatch = false;
  const ready = new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', (err: Error & { level?: string }) => {
      if (mismatch) reject(new Error(FINGERPRINT_MISMATCH, { cause: err }));
      else if (err.level === 'client-authentication') reject(new Error('tunnel server refused the credentials', { cause: err }));
      else reject(new Error(`tunnel SSH handshake failed: ${err.message}`, { cause: err }));
    });
    client.once('close', () => reject(new Error(mismatch ? FINGERPRINT_MISMATCH : 'tunnel server closed the connection')));
  });
  client.connect({
    sock: duplex as never,
    username: opts.credentials.slice(0, sep),
    password: opts.credentials.slice(sep + 1),
    ident: CLIENT_IDENT,
    readyTimeout: Math.max(1, deadline - Date.now()),
    hostVerifier: (key: Buffer) => {
      mismatch = !fingerprintMatches(opts.fingerprint, key);
      return !mismatch;
    },
  });
  // A real chisel server says `SSH-chisel-v3-server`; hand the original line back to the key exchange.
  restoreRemoteIdentOnHeader(client, () => duplex.originalIdent);

  const tunnel = new EventEmitter() as Tunnel & EventEmitter;
  const activity: TunnelActivity = { bytesIn: 0, bytesOut: 0, connections: 0, lastActivity: Date.now() };
  const sockets = new Set<net.Socket>();
  let lastEmit = 0;
  const touch = () => {
    activity.lastActivity = Date.now();
    if (activity.lastActivity - lastEmit >= (opts.activityIntervalMs ?? 1000)) {
      lastEmit = activity.lastActivity;
      tunnel.emit('activity', { ...activity });
    }
  };
  acceptChannels(client, CHISEL_CHANNEL, (ch) => serve(ch, opts, sockets, (dir, n) => {
    if (dir === 'channelToSocket') activity.bytesIn += n;
    else if (dir === 'socketToChannel') activity.bytesOut += n;
    else activity.connections++;
    touch();
  }));

  let ended: TunnelEnd | undefined;
  let failure: Error | undefined;
  client.on('error', (err: Error) => { failure ??= err; });
  const closed = new Promise<TunnelEnd>((resolve) => client.once('close', () => {
    for (const s of sockets) s.destroy();
    resolve(ended ?? { reason: 'error', error: failure ?? new Error('tunnel server closed the connection') });
  }));
  const end = (why: TunnelEnd) => { ended ??= why; client.end(); setTimeout(() => duplex.destroy(), 2000).unref(); return closed; };

  try {
    await ready;
    const reply = await withTimeout(sendGlobalRequest(client, CONFIG_REQUEST, encodeConfig({ Version: opts.version ?? 'capstan', Remotes: [remote] })),
      Math.max(1, deadline - Date.now()), 'tunnel config request timed out');
    if (!reply.ok) throw new Error(`tunnel server refused the tunnel configuration R:${opts.remotePort}`);
  } catch (err) {
    ended = { reason: 'error', error: err as Error };
    client.end();
    duplex.destroy();
    throw err;
  }

  const stopKeepalive = keepalive(client, opts.keepaliveMs ?? 25_000, (err) => void end({ reason: 'error', error: err }));
  void closed.then(() => stopKeepalive());
  Object.defineProperties(tunnel, {
    activity: { get: () => ({ ...activity }) },
    closed: { value: closed },
    close: { value: () => end({ reason: 'closed' }) },
  });
  return tunnel;
}

type OnTraffic = (dir: 'channelToSocket' | 'socketToChannel' | 'connection', n: number) => void;

/**
 * Serves one server-opened `chisel` channel: in this process when `opts.serve` is set, else by
 * dialling the target first and accepting only once connected.
 */
function serve(ch: IncomingChannel, opts: OpenTunnelOptions, sockets: Set<net.Socket>, onTraffic: OnTraffic): void {
  if (opts.serve) {
    const socket = channelAsSocket(ch.accept(), onTraffic);
    onTraffic('connection', 0);
    return opts.serve(socket);
  }
  const socket = net.connect({ host: opts.targetHost, port: opts.targetPort, allowHalfOpen: true, noDelay: true, timeout: 10_000 });
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  const fail = (err: Error) => {
    ch.reject(OPEN_FAILURE.CONNECT_FAILED, err.message);
    socket.destroy();
  };
  socket.once('timeout', () => fail(new Error('connect timeout')));
  socket.once('error', fail);
  socket.once('connect', () => {
    socket.setTimeout(0);
    socket.removeListener('error', fail);
    onTraffic('connection', 0);
    void pipeSocketChannel(socket, ch.accept(), onTraffic);
  });
}
