import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { utils as sshUtils } from 'ssh2';
import { generateTunnelKey, tunnelFingerprint } from '../crypto';
import {
  WebSocketDuplex, channelTarget, decodeConfig, decodeRemote, encodeConfig, fingerprintMatches, fingerprintOf, legacyFingerprintOf, userAddr,
} from '.';

describe('chisel remotes', () => {
  it('reads R:<port>:<host>:<port> as chisel does: local host 0.0.0.0, tcp, reverse', () => {
    expect(decodeRemote('R:8000:10.0.0.5:9001')).toEqual({
      LocalHost: '0.0.0.0', LocalPort: '8000', LocalProto: 'tcp', RemoteHost: '10.0.0.5', RemotePort: '9001', RemoteProto: 'tcp',
      Socks: false, Reverse: true, Stdio: false,
    });
    expect(userAddr(decodeRemote('R:8000:10.0.0.5:9001'))).toBe('R:0.0.0.0:8000');
    expect(channelTarget(decodeRemote('R:8000:10.0.0.5:9001'))).toBe('10.0.0.5:9001');
  });

  it('fills the short forms from the back like chisel\'s DecodeRemote', () => {
    expect(decodeRemote('3000')).toMatchObject({ LocalHost: '0.0.0.0', LocalPort: '3000', RemoteHost: '127.0.0.1', RemotePort: '3000' });
    expect(decodeRemote('R:127.0.0.1:51000:agent:9001')).toMatchObject({ LocalHost: '127.0.0.1', LocalPort: '51000', RemoteHost: 'agent', RemotePort: '9001' });
    expect(userAddr(decodeRemote('R:127.0.0.1:51000:agent:9001'))).toBe('R:127.0.0.1:51000');
    expect(decodeRemote('R:8000:[::1]:9001')).toMatchObject({ RemoteHost: '[::1]', RemotePort: '9001' });
    expect(decodeRemote('1.1.1.1:53/udp')).toMatchObject({ RemoteProto: 'udp', LocalProto: 'udp' });
    expect(channelTarget(decodeRemote('1.1.1.1:53/udp'))).toBe('1.1.1.1:53/udp');
    expect(decodeRemote('R:socks')).toMatchObject({ Socks: true, LocalHost: '127.0.0.1', LocalPort: '1080' });
    expect(() => decodeRemote('R:stdio:host:22')).toThrow('stdio cannot be reversed');
    expect(() => decodeRemote('a:b:c:d:e')).toThrow('invalid remote');
    expect(() => decodeRemote('R:host')).toThrow('missing ports');
  });

  it('writes the config request with Go\'s field names and reads it back leniently', () => {
    const config = { Version: '1.10.1', Remotes: [decodeRemote('R:8000:10.0.0.5:9001')] };
    expect(encodeConfig(config).toString()).toBe('{"Version":"1.10.1","Remotes":[{"LocalHost":"0.0.0.0","LocalPort":"8000","LocalProto":"tcp",'
      + '"RemoteHost":"10.0.0.5","RemotePort":"9001","RemoteProto":"tcp","Socks":false,"Reverse":true,"Stdio":false}]}');
    expect(decodeConfig(encodeConfig(config))).toEqual(config);
    expect(decodeConfig(Buffer.from('{"Remotes":[{"Reverse":true,"LocalPort":"1","Extra":1}]}')).Remotes[0]).toMatchObject({ Reverse: true, LocalPort: '1', LocalHost: '' });
    expect(() => decodeConfig(Buffer.from('{nope'))).toThrow('Invalid JSON config');
    expect(() => decodeConfig(Buffer.from('{"Remotes":{}}'))).toThrow('Remotes is not a list');
  });
});

describe('server key fingerprints', () => {
  const pem = generateTunnelKey();
  const parsed = sshUtils.parseKey(pem);
  const blob = (Array.isArray(parsed) ? parsed[0] : parsed as Exclude<typeof parsed, Error>).getPublicSSH();

  it('matches what state puts in Edge keys (SHA-256, padded standard base64)', () => {
    expect(fingerprintOf(blob)).toBe(tunnelFingerprint(pem));
    expect(fingerprintOf(blob)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(fingerprintMatches(tunnelFingerprint(pem), blob)).toBe(true);
  });

  it('refuses another key, an empty pin and a truncated pin', () => {
    expect(fingerprintMatches(crypto.createHash('sha256').update('x').digest('base64'), blob)).toBe(false);
    expect(fingerprintMatches('', blob)).toBe(false);
    expect(fingerprintMatches(fingerprintOf(blob).slice(0, 40), blob)).toBe(false);
  });

  it('accepts the whole legacy MD5 colon-hex form, in either case, and not a prefix of it', () => {
    const legacy = legacyFingerprintOf(blob);
    expect(legacy).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    expect(fingerprintMatches(legacy, blob)).toBe(true);
    expect(fingerprintMatches(legacy.toUpperCase(), blob)).toBe(true);
    expect(fingerprintMatches(legacy.slice(0, 20), blob)).toBe(false);
  });
});

/** A stand-in for a `ws` WebSocket: enough for WebSocketDuplex's read side. */
class FakeWs extends EventEmitter {
  readyState = 1;
  isPaused = false;
  sent: Buffer[] = [];
  pause() { this.isPaused = true; }
  resume() { this.isPaused = false; }
  send(data: Buffer, _o: unknown, cb: (err?: Error) => void) { this.sent.push(data); cb(); }
  close() { this.readyState = 3; this.emit('close'); }
  terminate() { this.close(); }
}

function readAll(d: WebSocketDuplex): Promise<Buffer> {
  const parts: Buffer[] = [];
  d.on('data', (b: Buffer) => parts.push(b));
  return new Promise((resolve) => d.on('end', () => resolve(Buffer.concat(parts))));
}

describe('WebSocketDuplex', () => {
  it('rewrites Go chisel\'s `SSH-chisel-v3-client` line for ssh2 and keeps the original, even split across messages', async () => {
    const ws = new FakeWs();
    const d = new WebSocketDuplex(ws as never, { identCompat: true });
    const out = readAll(d);
    ws.emit('message', Buffer.from('SSH-chisel'));
    ws.emit('message', Buffer.from('-v3-client\r\n\x00\x00\x01'));
    ws.emit('message', Buffer.from('rest'));
    ws.close();
    expect((await out).toString('latin1')).toBe('SSH-2.0-chisel-v3-client\r\n\x00\x00\x01rest');
    expect(d.originalIdent?.toString()).toBe('SSH-chisel-v3-client');
  });

  it('leaves a standard line, greeting lines and everything without identCompat untouched', async () => {
    const ws = new FakeWs();
    const d = new WebSocketDuplex(ws as never, { identCompat: true });
    const out = readAll(d);
    ws.emit('message', Buffer.from('hello\r\nSSH-2.0-OpenSSH_9\r\nabc'));
    ws.close();
    expect((await out).toString()).toBe('hello\r\nSSH-2.0-OpenSSH_9\r\nabc');
    expect(d.originalIdent).toBeUndefined();

    const ws2 = new FakeWs();
    const plain = new WebSocketDuplex(ws2 as never);
    const out2 = readAll(plain);
    ws2.emit('message', Buffer.from('SSH-chisel-v3-server\r\n'));
    ws2.close();
    expect((await out2).toString()).toBe('SSH-chisel-v3-server\r\n');
  });

  it('sends writes as binary messages: queued small ones joined under 256 KiB each, large ones as they are', async () => {
    const ws = new FakeWs();
    const d = new WebSocketDuplex(ws as never);
    const writes = [
      ...Array.from({ length: 100 }, (_, i) => Buffer.alloc(100, i)),
      Buffer.alloc(32 * 1024, 0xaa),
      ...Array.from({ length: 300 }, (_, i) => Buffer.alloc(1024, i)),
    ];
    d.cork();
    for (const w of writes) d.write(w);
    d.uncork();
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(ws.sent).equals(Buffer.concat(writes))).toBe(true);
    expect(ws.sent.map((b) => b.length)).toEqual([100 * 100, 32 * 1024, 256 * 1024, 44 * 1024]);
    // The large write went out as the very buffer it was: no copy.
    expect(ws.sent[1]).toBe(writes[100]);
  });
});
