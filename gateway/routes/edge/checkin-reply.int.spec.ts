import tls from 'node:tls';
import { api } from '../../../test/helpers/http';
import { startTestNode, type TestNode } from '../../../test/helpers/node';

jest.setTimeout(60_000);

const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };

/** One HTTP/1.1 exchange written and read by hand, so every header byte is seen as sent. */
function exchange(socket: tls.TLSSocket, request: string): Promise<{ head: string; headers: Map<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.slice(0, end);
      const headers = new Map(head.split('\r\n').slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const body = buf.slice(end + 4);
      if (body.length < Number(headers.get('content-length') ?? 0)) return;
      socket.off('data', onData);
      resolve({ head, headers, body });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(request);
  });
}

/** The bytes of the agents' most frequent replies, and that they cost the connection nothing. */
describe('check-in replies on the wire', () => {
  let n: TestNode;
  let id: number;
  let port: number;
  const request = (extra = '', version = '1.1') =>
    `GET /api/endpoints/${id}/edge/status HTTP/${version}\r\nHost: 127.0.0.1\r\nPortainer-Agent: 2.23.0\r\nPortainer-Agent-Platform: 1\r\nX-Portaineragent-Edgeid: agent-1\r\n${extra}\r\n`;
  const connect = () => new Promise<tls.TLSSocket>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(s));
  });

  beforeAll(async () => {
    n = await startTestNode({ services: ['gateway', 'state', 'rbac', 'polling', 'tunnel'] });
    port = Number(new URL(n.url).port);
    expect((await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    const token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
    id = (await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: 'wire', EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' } })).body.Id;
  });
  afterAll(async () => {
    await n?.stop();
  });

  it('sends no Connection or Keep-Alive header, and nosniff only with a body, on one kept connection', async () => {
    const socket = await connect();
    try {
      const first = await exchange(socket, request());
      expect(first.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(first.headers.get('x-content-type-options')).toBe('nosniff');
      const etag = first.headers.get('etag')!;
      const again = await exchange(socket, request(`If-None-Match: ${etag}\r\n`));
      expect(again.head).toMatch(/^HTTP\/1\.1 304 /);
      expect([...again.headers.keys()].sort()).toEqual(['date', 'etag', 'x-capstan-push']);
      expect(again.headers.get('etag')).toBe(etag);
      for (const reply of [first, again]) {
        expect(reply.headers.has('connection')).toBe(false);
        expect(reply.headers.has('keep-alive')).toBe(false);
      }
      // Still open: a third exchange on the same connection.
      expect((await exchange(socket, request(`If-None-Match: ${etag}\r\n`))).head).toMatch(/^HTTP\/1\.1 304 /);
      // A refused check-in is an error with a body: nosniff stays.
      const refused = await exchange(socket, request().replace('agent-1', 'agent-2'));
      expect(refused.head).toMatch(/^HTTP\/1\.1 403 /);
      expect(refused.headers.get('x-content-type-options')).toBe('nosniff');
    } finally {
      socket.destroy();
    }
  });

  it('still says Connection: close, and closes, when the agent asks for it', async () => {
    const socket = await connect();
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const reply = await exchange(socket, request('Connection: close\r\n'));
    expect(reply.headers.get('connection')).toBe('close');
    await closed;
  });
});
