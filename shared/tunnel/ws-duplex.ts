import { Duplex } from 'node:stream';
import WebSocket from 'ws';

/** Options of {@link WebSocketDuplex}. */
export interface WebSocketDuplexOptions {
  /**
   * Rewrite a peer identification line such as chisel's `SSH-chisel-v3-client` into the
   * `SSH-2.0-chisel-v3-client` form ssh2 can parse, keeping the original in `originalIdent` so it
   * can be handed back to the key exchange (see ssh2-internals.ts `setRemoteIdent`).
   */
  identCompat?: boolean;
}

const NL = 0x0a;
const MAX_HEADER_BYTES = 8192;
const MAX_COALESCED_BYTES = 256 * 1024;
/** Chunks from this size on are sent as messages of their own, never copied into a bigger one. */
const SENT_ALONE_BYTES = 4096;

/**
 * A WebSocket as a byte stream, the transport chisel runs SSH over (its `cnet.NewWebSocketConn`):
 * every write goes out as one binary message, every message of either kind is read as bytes.
 * Small writes queued while one is in flight are coalesced into one message, which keeps framing
 * cost low when ssh2 writes many small packets; large ones are sent as they are. Back-pressure
 * pauses the WebSocket's socket.
 */
export class WebSocketDuplex extends Duplex {
  /** The peer's identification line as sent (without CR LF), when it had to be rewritten. */
  originalIdent?: Buffer;
  private header: Buffer | null;

  constructor(private readonly ws: WebSocket, opts: WebSocketDuplexOptions = {}) {
    super({ allowHalfOpen: false });
    this.header = opts.identCompat ? Buffer.alloc(0) : null;
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const out = this.header ? this.scanHeader(buf) : buf;
      if (out && out.length > 0 && !this.push(out)) ws.pause();
    });
    ws.once('close', () => {
      if (this.header?.length) this.push(this.header);
      this.header = null;
      this.push(null);
    });
    ws.once('error', (err) => this.destroy(err));
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.send(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    // Runs of small chunks (window adjustments, keystrokes) are joined, up to well under a peer's
    // payload limit (ours is 1 MiB). A large one (an SSH packet of bulk data) goes as it is:
    // joining it would cost a copy and an allocation here, and a big message makes the peer's
    // receiver copy again whenever it spans two socket reads.
    const messages: Buffer[] = [];
    let run: Buffer[] = [];
    let size = 0;
    const flush = () => {
      if (run.length) messages.push(run.length === 1 ? run[0] : Buffer.concat(run, size));
      run = [];
      size = 0;
    };
    for (const { chunk } of chunks) {
      if (chunk.length >= SENT_ALONE_BYTES) {
        flush();
        messages.push(chunk);
        continue;
      }
      if (size + chunk.length > MAX_COALESCED_BYTES) flush();
      run.push(chunk);
      size += chunk.length;
    }
    flush();
    const last = messages.length - 1;
    messages.forEach((data, i) => {
      if (i === last) this.send(data, cb);
      else this.send(data, (err) => { if (err) this.destroy(err); });
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
    cb(err);
  }

  private send(data: Buffer, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) return cb(new Error('WebSocket is not open'));
    this.ws.send(data, { binary: true }, (err) => cb(err ?? null));
  }

  /** Holds bytes back until the `SSH-` line is complete, then releases them, rewritten if needed. */
  private scanHeader(chunk: Buffer): Buffer | null {
    const buf = Buffer.concat([this.header!, chunk]);
    let start = 0;
    for (let nl = buf.indexOf(NL); nl !== -1; nl = buf.indexOf(NL, start)) {
      const line = buf.subarray(start, nl);
      if (line.subarray(0, 4).toString('latin1') === 'SSH-') {
        this.header = null;
        const text = line.toString('latin1').replace(/\r$/, '');
        if (/^SSH-(?:2\.0|1\.99)-/.test(text)) return buf;
        this.originalIdent = Buffer.from(text, 'latin1');
        return Buffer.concat([buf.subarray(0, start), Buffer.from(`SSH-2.0-${text.slice(4)}\r\n`, 'latin1'), buf.subarray(nl + 1)]);
      }
      start = nl + 1;
    }
    if (buf.length > MAX_HEADER_BYTES) {
      // No identification line in sight: let ssh2 see the bytes and fail the way it does.
      this.header = null;
      return buf;
    }
    this.header = buf;
    return null;
  }
}
