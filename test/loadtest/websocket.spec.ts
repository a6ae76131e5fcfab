import { acceptFor, clientFrame, closeCode, FrameError, FrameReader, OP, parsePushMessage, readUpgradeAnswer, upgradeRequest } from './websocket';

const CRLF = '\r\n';
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A server frame (unmasked): FIN or not, opcode, payload. */
function serverFrame(opcode: number, payload: Buffer | string, fin = true): Buffer {
  const p = Buffer.from(payload);
  let head: Buffer;
  if (p.length < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, p.length]);
  else if (p.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = (fin ? 0x80 : 0) | opcode;
    head[1] = 126;
    head.writeUInt16BE(p.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(p.length), 2);
  }
  return Buffer.concat([head, p]);
}

describe('opening handshake', () => {
  it('computes the accept key of RFC 6455 section 1.3', () => {
    expect(acceptFor(KEY)).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('writes the upgrade with the agent headers, the subprotocol and no extension', () => {
    const req = upgradeRequest('/api/endpoints/7/edge/push', KEY, 'capstan-push.v1', [['Host', 'h:1'], ['X-PortainerAgent-EdgeID', 'e7']]);
    expect(req.startsWith(`GET /api/endpoints/7/edge/push HTTP/1.1${CRLF}Host: h:1${CRLF}X-PortainerAgent-EdgeID: e7${CRLF}`)).toBe(true);
    for (const h of ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Protocol: capstan-push.v1']) {
      expect(req).toContain(`${CRLF}${h}${CRLF}`);
    }
    expect(req).not.toMatch(/Sec-WebSocket-Extensions/i);
    expect(req.endsWith(`${CRLF}${CRLF}`)).toBe(true);
  });

  const ok = (headers: string[]) => Buffer.from(`HTTP/1.1 101 Switching Protocols${CRLF}${headers.join(CRLF)}${CRLF}${CRLF}`);
  const good = ['Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(KEY)}`, 'Sec-WebSocket-Protocol: capstan-push.v1'];

  it('accepts a 101 with the right key and subprotocol, and hands over the frames that followed the head', () => {
    const head = ok(good);
    const first = serverFrame(OP.text, '{"type":"status"}');
    const buf = Buffer.concat([head, first]);
    // Incomplete head: nothing yet.
    expect(readUpgradeAnswer(buf.subarray(0, head.length - 1), KEY, 'capstan-push.v1')).toBeUndefined();
    const a = readUpgradeAnswer(buf, KEY, 'capstan-push.v1');
    expect(a).toMatchObject({ ok: true, headBytes: head.length });
    expect(a!.ok && a!.rest.equals(first)).toBe(true);
  });

  it('refuses a wrong accept key, a missing subprotocol, an extension, and reports an HTTP refusal with its body', () => {
    expect(readUpgradeAnswer(ok([good[0], good[1], 'Sec-WebSocket-Accept: nope', good[3]]), KEY, 'capstan-push.v1')).toMatchObject({ ok: false, reason: 'wrong Sec-WebSocket-Accept' });
    expect(readUpgradeAnswer(ok(good.slice(0, 3)), KEY, 'capstan-push.v1')).toMatchObject({ ok: false, status: 101, reason: expect.stringMatching(/subprotocol/) });
    expect(readUpgradeAnswer(ok([...good, 'Sec-WebSocket-Extensions: permessage-deflate']), KEY, 'capstan-push.v1')).toMatchObject({ ok: false });
    const refused = Buffer.from(`HTTP/1.1 503 Service Unavailable${CRLF}Retry-After: 5${CRLF}Content-Length: 30${CRLF}${CRLF}{"message":"polling not ready"}`);
    expect(readUpgradeAnswer(refused, KEY, 'capstan-push.v1')).toEqual({ ok: false, status: 503, reason: '{"message":"polling not ready"}' });
    expect(readUpgradeAnswer(Buffer.from(`SSH-2.0-x${CRLF}${CRLF}`), KEY, 'capstan-push.v1')).toMatchObject({ ok: false, status: 0 });
  });
});

describe('server frames', () => {
  it('reads text, ping and close frames however the bytes are cut', () => {
    const wire = Buffer.concat([serverFrame(OP.text, '{"type":"commands"}'), serverFrame(OP.ping, 'p1'), serverFrame(OP.close, Buffer.from([0x0f, 0xa3, 0x78]))]);
    for (const cut of [1, 3, wire.length]) {
      const r = new FrameReader();
      const got = [];
      for (let i = 0; i < wire.length; i += cut) got.push(...r.push(wire.subarray(i, i + cut)));
      expect(got.map((f) => [f.opcode, f.payload.toString('latin1')])).toEqual([[OP.text, '{"type":"commands"}'], [OP.ping, 'p1'], [OP.close, '\x0f\xa3x']]);
    }
    expect(closeCode(Buffer.from([0x0f, 0xa3]))).toBe(4003);
    expect(closeCode(Buffer.alloc(0))).toBe(1005);
  });

  it('reads 16- and 64-bit lengths, and joins a fragmented message around a control frame', () => {
    const big = 'x'.repeat(70_000);
    const mid = 'y'.repeat(300);
    const r = new FrameReader();
    const got = r.push(Buffer.concat([
      serverFrame(OP.text, mid), serverFrame(OP.text, big),
      serverFrame(OP.text, 'ab', false), serverFrame(OP.ping, ''), serverFrame(OP.continuation, 'cd', false), serverFrame(OP.continuation, 'ef'),
    ]));
    expect(got.map((f) => [f.opcode, f.payload.length])).toEqual([[OP.text, 300], [OP.text, 70_000], [OP.ping, 0], [OP.text, 6]]);
    expect(got[3].payload.toString()).toBe('abcdef');
  });

  it('rejects what a server must not send', () => {
    const masked = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0, 0]);
    expect(() => new FrameReader().push(masked)).toThrow(FrameError);
    expect(() => new FrameReader().push(Buffer.from([0xc1, 0x00]))).toThrow(/reserved bits/);
    expect(() => new FrameReader().push(serverFrame(OP.continuation, 'x'))).toThrow(/continuation/);
    expect(() => new FrameReader().push(serverFrame(OP.ping, 'x', false))).toThrow(/control/);
    expect(() => new FrameReader(100).push(serverFrame(OP.text, 'z'.repeat(101)))).toThrow(/at most 100/);
    expect(() => new FrameReader().push(Buffer.concat([serverFrame(OP.text, 'a', false), serverFrame(OP.text, 'b')]))).toThrow(/previous one/);
  });
});

describe('client frames', () => {
  it('masks the payload with the given key, FIN set', () => {
    const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
    // RFC 6455 5.7: a masked "Hello" (as a text frame there; the masking is the same).
    const f = clientFrame(OP.pong, Buffer.from('Hello'), mask);
    expect([...f]).toEqual([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    expect(() => clientFrame(OP.pong, Buffer.alloc(126))).toThrow(RangeError);
  });
});

describe('push messages', () => {
  it('reads a status with its reply fields, other types by name, and anything else as unreadable', () => {
    const status = '{"type":"status","etag":"9d4a1f3c","body":{"status":"REQUIRED","port":49153,"schedules":[],"checkin":5,"credentials":"abc","stacks":[]}}';
    expect(parsePushMessage(status)).toEqual({ type: 'status', status: { status: 'REQUIRED', credentials: 'abc', checkin: 5, etag: '9d4a1f3c' } });
    expect(parsePushMessage('{"type":"commands"}')).toEqual({ type: 'commands' });
    expect(parsePushMessage('{"type":"future-thing","x":1}')).toEqual({ type: 'future-thing' });
    expect(parsePushMessage('{"type":"status"}')).toEqual({ type: 'unreadable' });
    expect(parsePushMessage('not json')).toEqual({ type: 'unreadable' });
    expect(parsePushMessage('[1]')).toEqual({ type: 'unreadable' });
  });
});
