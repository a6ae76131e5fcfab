/**
 * The only file that reaches into ssh2 1.17's internals. chisel speaks plain SSH, but with three
 * things ssh2's public API has no room for:
 *  - a global request with an arbitrary name and raw payload (`config`, `ping`) sent by the
 *    client and answered by the server, whose failure reply carries an error text (Go's
 *    `Request.Reply(false, msg)` appends it to SSH_MSG_REQUEST_FAILURE);
 *  - a channel of type `chisel` opened by the server, whose extra data is a raw `host:port`;
 *  - the identification line `SSH-chisel-v3-client` (no `2.0-`), which ssh2 rejects.
 * Plus one for speed: channel data written from several buffers without joining them first.
 * ssh2 parses and dispatches every message through `protocol._handlers`, sends through
 * `protocol._packetRW`, tracks channels in `_chanMgr` and their writes in `outgoing` and
 * `_chunk`; the helpers below use exactly those and nothing else. ssh2-internals.spec.ts pins
 * every behaviour relied on, so an ssh2 upgrade that moves them fails there first.
 */
import type { Duplex } from 'node:stream';
import type { Client } from 'ssh2';

/* eslint-disable @typescript-eslint/no-require-imports */
const { Channel, MAX_WINDOW, PACKET_SIZE } = require('ssh2/lib/Channel.js') as {
  Channel: new (client: unknown, info: unknown, opts?: { server?: boolean }) => SshChannel;
  MAX_WINDOW: number;
  PACKET_SIZE: number;
};
const { sendPacket } = require('ssh2/lib/protocol/utils.js') as { sendPacket: (proto: Protocol, packet: Buffer) => void };

// RFC 4254 message numbers.
const GLOBAL_REQUEST = 80;
const REQUEST_SUCCESS = 81;
const REQUEST_FAILURE = 82;
const CHANNEL_OPEN = 90;
const CHANNEL_DATA = 94;
/** RFC 4254 §5.1 reason codes for a refused channel. */
export const OPEN_FAILURE = { PROHIBITED: 1, CONNECT_FAILED: 2, UNKNOWN_TYPE: 3, RESOURCE_SHORTAGE: 4 } as const;

/** An ssh2 channel: a Duplex whose write side ends with SSH_MSG_CHANNEL_EOF. */
export type SshChannel = Duplex & { close(): void; server: boolean; incoming: { state: string }; outgoing: { state: string } };

/** What ssh2's Channel keeps for its writes (lib/Channel.js `_write`). */
interface ChannelWriteState {
  _client: { _protocol: Protocol };
  outgoing: { id: number; window: number; packetSize: number; state: string };
  _waitWindow: boolean;
  _chunk?: Buffer;
  _chunkcb?: (err?: Error | null) => void;
}

interface Protocol {
  _handlers: Record<string, (...args: any[]) => void>;
  _packetRW: { write: { allocStart: number; alloc(n: number): Buffer; finalize(b: Buffer): Buffer } };
  _remoteIdentRaw?: Buffer;
  _onHeader: (header: unknown) => void;
  channelOpenConfirm(remote: number, local: number, window: number, packet: number): void;
  channelOpenFail(remote: number, reason: number, desc: string): void;
}
interface ChanMgr { add(val?: unknown): number; update(id: number, val: unknown): void; remove(id: number): void }
interface Internals { _protocol?: Protocol; _chanMgr: ChanMgr; _callbacks?: Array<(err: unknown, data?: Buffer) => void>; _sock?: Duplex; authenticated?: boolean }
const inner = (c: unknown) => c as Internals;

function send(proto: Protocol, parts: Array<Buffer | number>): void {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : p)));
  const w = proto._packetRW.write;
  const packet = w.alloc(body.length);
  body.copy(packet, w.allocStart);
  sendPacket(proto, w.finalize(packet));
}
const sshString = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };

/** Reply to a global request: `data` travels after the message byte, on success and on failure. */
export interface GlobalReply { ok: boolean; data?: Buffer }

/**
 * Client side: sends global request `name` with a raw payload and wants a reply. Replies come back
 * in request order (RFC 4254 §4), which is how ssh2 matches them to its `_callbacks` queue.
 * ssh2 drops the payload of a failure, so a refusal resolves `{ok: false}` without its text.
 */
export function sendGlobalRequest(client: Client, name: string, payload: Buffer): Promise<GlobalReply> {
  const c = inner(client);
  if (!c._protocol || !c._callbacks || !c._sock?.writable) return Promise.reject(new Error('SSH connection is not open'));
  return new Promise((resolve, reject) => {
    c._callbacks!.push((err, data) => {
      if (err instanceof Error) reject(err);
      else resolve(err ? { ok: false } : { ok: true, data: data ?? undefined });
    });
    send(c._protocol!, [GLOBAL_REQUEST, sshString(name), 1, payload]);
  });
}

/**
 * Server side: takes over every global request of one connection (ssh2 would refuse unknown
 * names). The handler's answers are sent strictly in arrival order even when they resolve out of
 * order; requests before authentication are refused without reaching it.
 */
export function handleGlobalRequests(conn: unknown, handler: (name: string, payload: Buffer) => GlobalReply | Promise<GlobalReply>): void {
  const c = inner(conn);
  const proto = c._protocol!;
  const queue: Array<{ reply?: GlobalReply }> = [];
  const flush = () => {
    while (queue.length && queue[0].reply) {
      const { ok, data } = queue.shift()!.reply!;
      // An answer that arrives after the connection died has nowhere to go.
      if (c._sock?.writable) send(proto, [ok ? REQUEST_SUCCESS : REQUEST_FAILURE, data ?? Buffer.alloc(0)]);
    }
  };
  proto._handlers.GLOBAL_REQUEST = (_p: unknown, name: string, wantReply: boolean, data: unknown) => {
    const slot: { reply?: GlobalReply } = {};
    if (wantReply) queue.push(slot);
    const answer = (r: GlobalReply) => { slot.reply = r; if (wantReply) flush(); };
    if (!c.authenticated) return answer({ ok: false });
    // ssh2 hands unknown requests over as the raw bytes after the want-reply flag.
    const payload = Buffer.isBuffer(data) ? data : Buffer.alloc(0);
    Promise.resolve()
      .then(() => handler(name, payload))
      .then(answer, (err: Error) => answer({ ok: false, data: Buffer.from(err.message) }));
  };
}

/**
 * Server side: opens a channel of `type` with raw `extra` data to the client (ssh2 only opens
 * `forwarded-tcpip`, `x11` and streamlocal). The returned channel has half-close semantics: ending
 * it sends EOF only; the caller closes it once both directions are done.
 */
export function openChannel(conn: unknown, type: string, extra: Buffer): Promise<SshChannel> {
  const c = inner(conn);
  return new Promise((resolve, reject) => {
    const pending = (err: Error | undefined, channel: SshChannel) => {
      if (err) return reject(err);
      // ssh2 builds channels it opened as a server with `server: true`, whose `end()` also sends
      // CHANNEL_CLOSE; a tunnelled TCP connection must stay readable after its write side ends.
      channel.server = false;
      resolve(channel);
    };
    (pending as unknown as { type: string }).type = type;
    const local = c._chanMgr.add(pending);
    if (local === -1) return reject(new Error('No free channels available'));
    send(c._protocol!, [CHANNEL_OPEN, sshString(type), u32(local), u32(MAX_WINDOW), u32(PACKET_SIZE), extra]);
  });
}

/** An incoming channel open the caller must settle with exactly one of `accept` or `reject`. */
export interface IncomingChannel { accept(): SshChannel; reject(reason?: number, description?: string): void }

/**
 * Client side: routes server-opened channels of `type` to `onOpen` (ssh2 refuses unknown types).
 * ssh2's parser drops such a channel's extra data, so the handler learns only that one was asked.
 */
export function acceptChannels(client: Client, type: string, onOpen: (ch: IncomingChannel) => void): void {
  const c = inner(client);
  const proto = c._protocol!;
  const original = proto._handlers.CHANNEL_OPEN;
  proto._handlers.CHANNEL_OPEN = (p: unknown, info: { type: string; sender: number; window: number; packetSize: number }) => {
    if (info.type !== type) return original(p, info);
    const local = c._chanMgr.add();
    if (local === -1) return proto.channelOpenFail(info.sender, OPEN_FAILURE.RESOURCE_SHORTAGE, 'no channels available');
    let settled = false;
    onOpen({
      accept() {
        if (settled) throw new Error('channel already settled');
        settled = true;
        const channel = new Channel(client, {
          type,
          incoming: { id: local, window: MAX_WINDOW, packetSize: PACKET_SIZE, state: 'open' },
          outgoing: { id: info.sender, window: info.window, packetSize: info.packetSize, state: 'open' },
        });
        c._chanMgr.update(local, channel);
        proto.channelOpenConfirm(info.sender, local, MAX_WINDOW, PACKET_SIZE);
        return channel;
      },
      reject(reason = OPEN_FAILURE.CONNECT_FAILED, description = '') {
        if (settled) return;
        settled = true;
        c._chanMgr.remove(local);
        proto.channelOpenFail(info.sender, reason, description);
      },
    });
  };
}

/**
 * Sends `pieces` on `channel` as CHANNEL_DATA packets built straight from them: ssh2's `_write`
 * takes one buffer, so pieces written together (an HTTP chunk's size line, data and CRLF) would be
 * copied into one and then again into each packet. As ssh2's Channel `_write`: packets of at most
 * the peer's packet size and window; the rest waits in `_chunk` with the callback until ssh2's
 * WINDOW_ADJUST handler resumes it with its own `_write`; no callback once the channel closes.
 */
export function writeChannelData(channel: SshChannel, pieces: readonly Buffer[], cb: (err?: Error | null) => void): void {
  const ch = channel as unknown as ChannelWriteState;
  const { outgoing } = ch;
  if (outgoing.state !== 'open') return;
  const w = ch._client._protocol._packetRW.write;
  let left = 0;
  for (const piece of pieces) left += piece.length;
  let window = outgoing.window;
  let i = 0;
  let off = 0;
  while (left > 0 && window > 0) {
    const n = Math.min(left, window, outgoing.packetSize);
    const packet = w.alloc(9 + n);
    let p = w.allocStart;
    packet[p] = CHANNEL_DATA;
    packet.writeUInt32BE(outgoing.id, p + 1);
    packet.writeUInt32BE(n, p + 5);
    p += 9;
    for (let need = n; need > 0;) {
      const piece = pieces[i];
      const take = Math.min(piece.length - off, need);
      packet.set(off === 0 && take === piece.length ? piece : piece.subarray(off, off + take), p);
      p += take;
      need -= take;
      off += take;
      if (off === piece.length) { i++; off = 0; }
    }
    sendPacket(ch._client._protocol, w.finalize(packet));
    left -= n;
    window -= n;
  }
  outgoing.window = window;
  if (left > 0) {
    ch._waitWindow = true;
    const rest = [pieces[i].subarray(off), ...pieces.slice(i + 1)];
    ch._chunk = rest.length === 1 ? rest[0] : Buffer.concat(rest);
    ch._chunkcb = cb;
    return;
  }
  cb();
}

/** The stream a server-side connection runs on: ssh2's `connection` event names only its address. */
export function socketOf(conn: unknown): Duplex | undefined {
  return inner(conn)._sock;
}

/**
 * Server side, from the `connection` event: puts back the peer's identification line as it was
 * sent, after the transport rewrote it so ssh2 would parse it (see ws-duplex.ts). The key exchange
 * hashes this line, so it must be the original bytes or the peer's signature check fails.
 */
export function setRemoteIdent(conn: unknown, ident: Buffer): void {
  inner(conn)._protocol!._remoteIdentRaw = ident;
}

/** Client side twin of `setRemoteIdent`, installed right after `connect()`: runs at header time. */
export function restoreRemoteIdentOnHeader(client: Client, original: () => Buffer | undefined): void {
  const proto = inner(client)._protocol!;
  const onHeader = proto._onHeader;
  proto._onHeader = (header: unknown) => {
    const ident = original();
    if (ident) proto._remoteIdentRaw = ident;
    onHeader(header);
  };
}
