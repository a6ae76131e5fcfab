/**
 * The HTTP/1.1 the simulated agents speak, written and read by hand over a raw TLS socket.
 *
 * Why not undici or node:https: at 3,000 check-ins/s on a machine the server shares, the tester's
 * own CPU matters, and a request here is one string write and a response one `indexOf` plus a
 * header scan. It also makes the byte accounting exact: the request bytes are the bytes written,
 * the response bytes are the decrypted bytes read from the socket for that response (status
 * line, header lines, blank line, body and any chunk framing), nothing estimated.
 */

/** One request header, written exactly as given (name casing included). */
export type HeaderPair = readonly [name: string, value: string];

/** The exact bytes of a request: request line, headers, blank line, body. */
export function serializeRequest(method: string, path: string, headers: readonly HeaderPair[], body = ''): string {
  let s = `${method} ${path} HTTP/1.1\r\n`;
  for (const [name, value] of headers) s += `${name}: ${value}\r\n`;
  if (body) s += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return `${s}\r\n${body}`;
}

/** One complete response as read from the connection. */
export interface RawResponse {
  status: number;
  /** Lower-cased names of the headers the agents need; others are skipped. */
  etag?: string;
  /** `X-Capstan-Push`: the push path the server offers (README "Push channel"). */
  push?: string;
  close: boolean;
  body: Buffer;
  /** Bytes this response took on the connection (head + body + chunk framing). */
  bytes: number;
}

/** The server sent something that is not HTTP/1.1. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const MAX_HEAD = 64 * 1024;

/**
 * Incremental parser for the responses of one keep-alive connection. Feed it whatever the socket
 * delivers; it returns the responses completed by that chunk (normally zero or one).
 */
export class ResponseParser {
  private buf: Buffer = Buffer.alloc(0);
  private head: { status: number; etag?: string; push?: string; close: boolean; headBytes: number; length: number | 'chunked' | 'eof' } | undefined;

  /** Bytes received for the response in progress (0 between responses). */
  get pendingBytes(): number {
    return this.buf.length + (this.head?.headBytes ?? 0);
  }

  push(chunk: Buffer): RawResponse[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RawResponse[] = [];
    for (;;) {
      if (!this.head) {
        const end = this.buf.indexOf(CRLFCRLF);
        if (end < 0) {
          if (this.buf.length > MAX_HEAD) throw new ProtocolError(`response head larger than ${MAX_HEAD} bytes`);
          return out;
        }
        this.head = parseHead(this.buf.toString('latin1', 0, end), end + 4);
        this.buf = this.buf.subarray(end + 4);
      }
      const h = this.head;
      let bodyEnd: number; // bytes of this.buf that belong to the response
      let body: Buffer;
      if (h.length === 'chunked') {
        const r = dechunk(this.buf);
        if (!r) return out;
        ({ consumed: bodyEnd, body } = r);
      } else if (h.length === 'eof') {
        return out; // completed by finish() when the server closes
      } else {
        if (this.buf.length < h.length) return out;
        bodyEnd = h.length;
        body = this.buf.subarray(0, h.length);
      }
      out.push({ status: h.status, etag: h.etag, push: h.push, close: h.close, body, bytes: h.headBytes + bodyEnd });
      this.buf = this.buf.subarray(bodyEnd);
      this.head = undefined;
      if (!this.buf.length) return out;
    }
  }

  /** The server closed the connection: completes a response delimited by end of stream. */
  finish(): RawResponse | undefined {
    const h = this.head;
    if (h?.length !== 'eof') return undefined;
    this.head = undefined;
    const body = this.buf;
    this.buf = Buffer.alloc(0);
    return { status: h.status, etag: h.etag, push: h.push, close: true, body, bytes: h.headBytes + body.length };
  }
}

function parseHead(text: string, headBytes: number) {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new ProtocolError(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0].slice(0, 80))}`);
  const status = Number(m[1]);
  let etag: string | undefined;
  let push: string | undefined;
  let close = lines[0].startsWith('HTTP/1.0');
  let length: number | 'chunked' | 'eof' | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ProtocolError(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') length = Number(value);
    else if (name === 'transfer-encoding' && value.toLowerCase().includes('chunked')) length = 'chunked';
    else if (name === 'etag') etag = value;
    else if (name === 'x-capstan-push') push = value;
    else if (name === 'connection') close = value.toLowerCase() === 'close';
  }
  // RFC 9112 6.3: 1xx, 204 and 304 have no body whatever the headers say.
  if (status === 304 || status === 204 || status < 200) length = 0;
  if (length === undefined) length = 'eof';
  if (typeof length === 'number' && !(Number.isSafeInteger(length) && length >= 0)) throw new ProtocolError('invalid Content-Length');
  return { status, etag, push, close, headBytes, length };
}

/** Decodes a complete chunked body at the start of `buf`, or undefined when more bytes are needed. */
function dechunk(buf: Buffer): { consumed: number; body: Buffer } | undefined {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', pos, 'latin1');
    if (eol < 0) return undefined;
    const size = parseInt(buf.toString('latin1', pos, eol).split(';')[0], 16);
    if (!Number.isFinite(size) || size < 0) throw new ProtocolError('invalid chunk size');
    if (size === 0) {
      // The last chunk, then optional trailer lines, then an empty line.
      const end = buf.indexOf('\r\n\r\n', eol, 'latin1');
      if (end < 0) return undefined;
      return { consumed: end + 4, body: Buffer.concat(parts) };
    }
    if (buf.length < eol + 2 + size + 2) return undefined;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
}
