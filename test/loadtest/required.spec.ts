import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import selfsigned from 'selfsigned';
import { answerOutcome, askedForTunnel, fireRequired, NOT_ANSWERED } from './required';

describe('REQUIRED calls: outcomes', () => {
  it('tells the causes of error answers apart', () => {
    expect(answerOutcome(200, 'OK')).toBe('200');
    expect(answerOutcome(503, '{"message":"Service temporarily unavailable, please retry","details":"No state leader is available; retry shortly"}'))
      .toBe('HTTP 503: No state leader is available; retry shortly');
    expect(answerOutcome(503, '{"message":"Every virtual tunnel port in [1024, 65535] is held by a live tunnel of this node"}'))
      .toBe('HTTP 503: Every virtual tunnel port in [1024, 65535] is held by a live tunnel of this node');
    expect(answerOutcome(502, '<html>')).toBe('HTTP 502');
  });

  it('knows which calls got as far as requiring the tunnel', () => {
    expect(askedForTunnel(answerOutcome(503, '{"details":"The environment did not open its tunnel in time; its agent may be offline"}'))).toBe(true);
    expect(askedForTunnel(answerOutcome(504, '{"message":"The environment did not open its tunnel in time; its agent may be offline"}'))).toBe(true);
    expect(askedForTunnel(NOT_ANSWERED)).toBe(true);
    expect(askedForTunnel('200')).toBe(true);
    expect(askedForTunnel('HTTP 503: No state leader is available; retry shortly')).toBe(false);
    expect(askedForTunnel('connection reset')).toBe(false);
  });
});

describe('REQUIRED calls: pipelined', () => {
  let server: tls.Server;
  let base: string;
  const seen: string[] = [];
  let hold = new Set<string>();

  beforeAll(async () => {
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' } as never);
    // Answers each request line in order; ids in `hold` are never answered (nor what follows them).
    server = tls.createServer({ key: pems.private, cert: pems.cert }, (sock) => {
      let buf = '';
      let held = false;
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        let end: number;
        while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          const id = /^GET \/api\/endpoints\/(\d+)\/docker\/_ping HTTP\/1\.1/.exec(head)?.[1] ?? '?';
          seen.push(`${id} ${/\r\nx-api-key: k\r\n/i.test(`${head}\r\n`) ? 'auth' : 'no-auth'}`);
          if (hold.has(id)) held = true;
          if (held) continue;
          const body = Number(id) % 2 ? '{"message":"Service temporarily unavailable","details":"No state leader is available; retry shortly"}' : '{"details":"The environment did not open its tunnel in time"}';
          sock.write(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('writes every call at once on a few connections and maps each answer to its call', async () => {
    seen.length = 0;
    hold = new Set();
    let t = 0;
    const ids = Array.from({ length: 10 }, (_, i) => 100 + i);
    const f = await fireRequired({ bases: [base], auth: { 'x-api-key': 'k' }, insecure: true, endpointIds: ids, connections: 3, now: () => ++t });
    await f.allAnswered;
    f.close();
    expect(seen.sort()).toEqual(ids.map((id) => `${id} auth`).sort());
    expect(f.result).toMatchObject({ calls: 10, connections: 3, outcomes: { 'HTTP 503: The environment did not open its tunnel in time': 5, 'HTTP 503: No state leader is available; retry shortly': 5 } });
    expect(f.result.perCall).toEqual(ids.map((id) => (id % 2 ? 'HTTP 503: No state leader is available; retry shortly' : 'HTTP 503: The environment did not open its tunnel in time')));
    expect(f.result.writtenAt).toBeGreaterThanOrEqual(f.result.firedAt);
  });

  it('counts the calls still waiting when it stops as not answered', async () => {
    hold = new Set(['104']);
    const ids = [100, 101, 102, 103, 104, 105, 106, 107];
    const f = await fireRequired({ bases: [base], auth: {}, insecure: true, endpointIds: ids, connections: 2, now: () => 0 });
    // Connection 0 carries 100, 102, 104, 106: 104 and what follows it stay unanswered.
    while (Object.values(f.result.outcomes).reduce((a, b) => a + b, 0) < 6) await new Promise((r) => setTimeout(r, 10));
    f.close();
    await f.allAnswered;
    expect(f.result.perCall).toEqual([
      'HTTP 503: The environment did not open its tunnel in time', 'HTTP 503: No state leader is available; retry shortly',
      'HTTP 503: The environment did not open its tunnel in time', 'HTTP 503: No state leader is available; retry shortly',
      NOT_ANSWERED, 'HTTP 503: No state leader is available; retry shortly', NOT_ANSWERED, 'HTTP 503: No state leader is available; retry shortly',
    ]);
  });
});
