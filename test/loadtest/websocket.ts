/**
 * The client end of a WebSocket (RFC 6455), written and read by hand on a TLS socket like the
 * check-ins' HTTP/1.1 (see http1.ts): the opening handshake as exact bytes, the server's answer
 * checked, and an incremental frame reader. Only what an agent of the push channel needs: it reads
 * text frames, answers pings and closes, and sends nothing of its own.
 */
import crypto from 'node:crypto';
import { serializeRequest, type HeaderPair } from './http1';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The `Sec-WebSocket-Accept` a server must answer to `key`. */
export const acceptFor = (key: string): string => crypto.createHash('sha1').update(key + GUID).digest('base64');

/** The opening handshake: a GET with the upgrade headers, then `headers` (no extensions offered). */
export function upgradeRequest(path: string, key: string, protocol: string, headers: readonly HeaderPair[]): string {
  return serializeRequest('GET', path, [
    ...headers,
    ['Connection', 'Upgrade'],
    ['Upgrade', 'websocket'],
    ['Sec-WebSocket-Version', '13'],
    ['Sec-WebSocket-Key', key],
    ['Sec-WebSocket-Protocol', protocol],
  ]);
}

/** The server's answer to the opening handshake. */
export type UpgradeAnswer =
  /** 101 with the right accept key and subprotocol; `rest` is what followed the head (frames). */
  | { ok: true; headBytes: number; rest: Buffer }
  /** Anything else: the HTTP status (0 when the answer is not HTTP) and why it is refused. */
  | { ok: false; status: number; reason: string };

const CRLFCRLF = Buffer.from('\r\n\r\n');
const MAX_HEAD = 16 * 1024;

/**
 * Reads the answer to the opening handshake from what arrived so far: undefined until its head is
 * complete. A refusal (a 503 while polling is not ready, a 403) is `ok: false` with its status and
 * the start of its body when that came in the same read.
 */
export function readUpgradeAnswer(buf: Buffer, key: string, protocol: string): UpgradeAnswer | undefined {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) {
    if (buf.length > MAX_HEAD) return { ok: false, status: 0, reason: `answer head larger than ${MAX_HEAD} bytes` };
    return undefined;
  }
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return { ok: false, status: 0, reason: `not an HTTP status line: ${JSON.stringify(lines[0].slice(0, 80))}` };
  const status = Number(m[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (status !== 101) {
    const body = buf.toString('utf8', end + 4, Math.min(buf.length, end + 4 + 300)).trim();
    return { ok: false, status, reason: body || lines[0] };
  }
  if ((headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') return { ok: false, status, reason: 'a 101 without Upgrade: websocket' };
  if (headers.get('sec-websocket-accept') !== acceptFor(key)) return { ok: false, status, reason: 'wrong Sec-WebSocket-Accept' };
  if (headers.get('sec-websocket-protocol') !== protocol) return { ok: false, status, reason: `subprotocol ${JSON.stringify(headers.get('sec-websocket-protocol') ?? '')} instead of ${protocol}` };
  if (headers.has('sec-websocket-extensions')) return { ok: false, status, reason: 'an extension was negotiated though none was offered' };
  return { ok: true, headBytes: end + 4, rest: buf.subarray(end + 4) };
}

export const OP = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** One complete message or control frame from the server. */
export interface Frame {
  opcode: number;
  payload: Buffer;
}

/** The server broke the framing rules: the connection must be dropped. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * Incremental reader of server frames. Feed it what the socket delivers; it returns the messages
 * (fragments joined) and control frames that chunk completed, in order.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentOp = -1;
  private fragmentBytes = 0;

  constructor(private readonly maxPayload = 1024 * 1024) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return out;
      const fin = (b[0] & 0x80) !== 0;
      if (b[0] & 0x70) throw new FrameError('reserved bits set (no extension was negotiated)');
      const opcode = b[0] & 0x0f;
      if (b[1] & 0x80) throw new FrameError('a masked frame from the server');
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return out;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return out;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(this.maxPayload)) throw new FrameError(`a frame of ${big} bytes (at most ${this.maxPayload})`);
        len = Number(big);
        off = 10;
      }
      if (len > this.maxPayload) throw new FrameError(`a frame of ${len} bytes (at most ${this.maxPayload})`);
      if (b.length < off + len) return out;
      const payload = b.subarray(off, off + len);
      this.buf = b.subarray(off + len);
      if (opcode >= 8) {
        if (opcode > OP.pong) throw new FrameError(`unknown control opcode ${opcode}`);
        if (!fin || len > 125) throw new FrameError('a fragmented or oversized control frame');
        out.push({ opcode, payload });
      } else if (opcode === OP.continuation) {
        if (this.fragmentOp < 0) throw new FrameError('a continuation frame with no message to continue');
        this.addFragment(payload);
        if (fin) out.push(this.takeMessage());
      } else {
        if (opcode > OP.binary) throw new FrameError(`unknown data opcode ${opcode}`);
        if (this.fragmentOp >= 0) throw new FrameError('a new message before the previous one ended');
        if (fin) out.push({ opcode, payload });
        else {
          this.fragmentOp = opcode;
          this.addFragment(payload);
        }
      }
    }
  }

  private addFragment(payload: Buffer): void {
    this.fragmentBytes += payload.length;
    if (this.fragmentBytes > this.maxPayload) throw new FrameError(`a message over ${this.maxPayload} bytes`);
    this.fragments.push(payload);
  }

  private takeMessage(): Frame {
    const frame = { opcode: this.fragmentOp, payload: Buffer.concat(this.fragments) };
    this.fragments = [];
    this.fragmentOp = -1;
    this.fragmentBytes = 0;
    return frame;
  }
}

/** A client frame (always masked, RFC 6455 5.3): a pong echoing a ping, or a close. Control payloads only (<= 125 bytes). */
export function clientFrame(opcode: number, payload: Buffer = Buffer.alloc(0), mask: Buffer = crypto.randomBytes(4)): Buffer {
  if (payload.length > 125) throw new RangeError('control frames carry at most 125 bytes');
  const out = Buffer.alloc(6 + payload.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2, 0, 4);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/** The close code of a close frame's payload (1005: none given). */
export const closeCode = (payload: Buffer): number => (payload.length >= 2 ? payload.readUInt16BE(0) : 1005);

/** A push message as the load test counts it. */
export interface PushMessageInfo {
  /** `status`, `commands`, `timers`, another type the server may add, or `unreadable`. */
  type: string;
  /** A status message: the reply's fields that matter here. */
  status?: { status: string; credentials: string; checkin: number; etag: string };
}

/** Reads one text frame of the push channel (README "Push channel"; types in shared/contracts/push.ts). */
export function parsePushMessage(text: string): PushMessageInfo {
  let msg: any;
  try {
    msg = JSON.parse(text);
  } catch {
    return { type: 'unreadable' };
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return { type: 'unreadable' };
  if (msg.type !== 'status') return { type: msg.type };
  const body = msg.body;
  if (!body || typeof body !== 'object') return { type: 'unreadable' };
  return {
    type: 'status',
    status: {
      status: String(body.status ?? ''), credentials: String(body.credentials ?? ''),
      checkin: typeof body.checkin === 'number' ? body.checkin : 0, etag: typeof msg.etag === 'string' ? msg.etag : '',
    },
  };
}
