import { ProtocolError, ResponseParser, serializeRequest } from './http1';
import { MODES, modeByName, type ModeAgent } from './modes';

const CRLF = '\r\n';

describe('request bytes', () => {
  it('counts exactly what goes on the wire: request line, headers, blank line, body', () => {
    const req = serializeRequest('POST', '/api/endpoints/edge/async', [['Host', 'h:1'], ['X-A', 'é']], '{"endpointId":7}');
    expect(req).toBe(`POST /api/endpoints/edge/async HTTP/1.1${CRLF}Host: h:1${CRLF}X-A: é${CRLF}Content-Length: 16${CRLF}${CRLF}{"endpointId":7}`);
    // "é" is two bytes in UTF-8: the byte count is not the string length.
    expect(Buffer.byteLength(req)).toBe(req.length + 1);
  });

  it('sends the agent headers and the cached ETags, most recent last, at most 8', () => {
    const driver = MODES.poll.driver();
    const agent: ModeAgent = { endpointId: 12, edgeId: '0f3b1c2e-8d4a-4b7e-9c1d-2a3b4c5d6e7f', host: '127.0.0.1:9443', state: undefined };
    driver.init(agent);
    const first = driver.request(agent);
    expect(first.startsWith(`GET /api/endpoints/12/edge/status HTTP/1.1${CRLF}Host: 127.0.0.1:9443${CRLF}`)).toBe(true);
    for (const h of ['X-Portaineragent-Edgeid: 0f3b1c2e-8d4a-4b7e-9c1d-2a3b4c5d6e7f', 'Portainer-Agent: 2.23.0', 'Portainer-Agent-Platform: 1', 'X-Portaineragent-Timezone: Local', 'X-Portaineragent-Update-Id: 0']) {
      expect(first).toContain(`${CRLF}${h}${CRLF}`);
    }
    expect(first).not.toContain('If-None-Match');
    expect(first.endsWith(`${CRLF}${CRLF}`)).toBe(true);

    for (let i = 0; i < 10; i++) {
      const asked = driver.onReply(agent, { status: 200, etag: `e${i}`, close: false, body: Buffer.from(`{"status":"IDLE","checkin":${i + 1}}`), bytes: 0 });
      expect(asked).toBe(i + 1);
    }
    expect(driver.request(agent)).toContain(`${CRLF}If-None-Match: e2,e3,e4,e5,e6,e7,e8,e9${CRLF}`);
    // A 304 answers from the cache (that reply's interval) and makes its ETag the most recent.
    expect(driver.onReply(agent, { status: 304, etag: 'e4', close: false, body: Buffer.alloc(0), bytes: 0 })).toBe(5);
    expect(driver.request(agent)).toContain(`If-None-Match: e2,e3,e5,e6,e7,e8,e9,e4${CRLF}`);
  });

  it('caches a pushed reply by its ETag in push mode, so a later check-in can be a 304', () => {
    const mode = modeByName('push');
    expect(mode.push).toBe(true);
    const driver = mode.driver();
    const agent: ModeAgent = { endpointId: 3, edgeId: 'e', host: 'h:1', state: undefined };
    driver.init(agent);
    driver.onReply(agent, { status: 200, etag: 'polled', close: false, body: Buffer.from('{"status":"IDLE","checkin":5}'), bytes: 0 });
    driver.remember!(agent, 'pushed', 7);
    expect(driver.request(agent)).toContain(`${CRLF}If-None-Match: polled,pushed${CRLF}`);
    // The pushed reply's interval, when a 304 matches it.
    expect(driver.onReply(agent, { status: 304, etag: 'pushed', close: false, body: Buffer.alloc(0), bytes: 0 })).toBe(7);
    expect(() => modeByName('carrier-pigeon')).toThrow(/unknown --mode/);
  });
});

describe('response bytes', () => {
  const r304 = `HTTP/1.1 304 Not Modified${CRLF}etag: fa9c3cc2${CRLF}Date: Sun, 22 Nov 2026 19:15:41 GMT${CRLF}Connection: keep-alive${CRLF}x-capstan-push: /api/endpoints/12/edge/push${CRLF}${CRLF}`;
  const body = '{"status":"IDLE","port":0,"schedules":[],"checkin":5,"credentials":"","stacks":[]}\n';
  const r200 = `HTTP/1.1 200 OK${CRLF}etag: c41af71b${CRLF}content-type: application/json${CRLF}content-length: ${body.length}${CRLF}${CRLF}${body}`;

  it('counts every byte of each response on a keep-alive connection, however the chunks are cut', () => {
    const wire = Buffer.from(r200 + r304 + r200);
    for (const cut of [1, 7, 64, wire.length]) {
      const p = new ResponseParser();
      const got = [];
      for (let i = 0; i < wire.length; i += cut) got.push(...p.push(wire.subarray(i, i + cut)));
      expect(got.map((r) => [r.status, r.etag, r.bytes])).toEqual([[200, 'c41af71b', r200.length], [304, 'fa9c3cc2', r304.length], [200, 'c41af71b', r200.length]]);
      // The push offer of each reply (README "Push channel").
      expect(got.map((r) => r.push)).toEqual([undefined, '/api/endpoints/12/edge/push', undefined]);
      expect(got[0].body.toString()).toBe(body);
      expect(got.reduce((a, r) => a + r.bytes, 0)).toBe(wire.length);
      expect(p.pendingBytes).toBe(0);
    }
  });

  it('counts chunk framing as response bytes and decodes the body', () => {
    const raw = `HTTP/1.1 403 Forbidden${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}5${CRLF}hello${CRLF}6;x=y${CRLF} world${CRLF}0${CRLF}${CRLF}`;
    const p = new ResponseParser();
    const [res] = p.push(Buffer.from(raw));
    expect(res.status).toBe(403);
    expect(res.body.toString()).toBe('hello world');
    expect(res.bytes).toBe(raw.length);
  });

  it('reports the bytes of an unfinished response, and completes one delimited by the close', () => {
    const p = new ResponseParser();
    expect(p.push(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'))).toEqual([]);
    expect(p.pendingBytes).toBe(42);
    const q = new ResponseParser();
    expect(q.push(Buffer.from('HTTP/1.0 200 OK\r\n\r\npartial'))).toEqual([]);
    expect(q.finish()).toMatchObject({ status: 200, close: true, bytes: 26 });
  });

  it('rejects what is not HTTP', () => {
    expect(() => new ResponseParser().push(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toThrow(ProtocolError);
  });
});
