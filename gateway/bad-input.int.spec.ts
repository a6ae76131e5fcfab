import { api, type ApiResponse } from '../test/helpers/http';
import { startTestNode, type TestNode } from '../test/helpers/node';

jest.setTimeout(180_000);

/*
 * A battery of malformed requests against every route of the OpenAPI document, anonymous and as
 * an administrator. Every answer must be a client error (or a success) with a JSON `{message}`,
 * never a 5xx, and the server must still answer afterwards.
 */

const BODY_LIMIT = 16 * 1024;
const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };

interface Operation {
  method: string;
  path: string;
  bodySchema?: { properties?: Record<string, { type?: string }> };
}
interface Attempt {
  method: string;
  url: string;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

/** Path values that must never reach a handler as a valid id, plus unknown ids. */
const BAD_IDS = ['abc', '0', '-1', '1.5', '1e3', '0x10', '99999999999999999999', '2147483648', '999999', '..%2F..%2Fetc%2Fpasswd',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..', '%00', '1%00', '%E0%A4%A', '%', '%25', ' 1', '%20', 'null', '[1]', '{}', '9'.repeat(150), '1;DROP TABLE', '<script>', 'true', '+1', '1,2', '01%2F'];

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
/** Bodies that are not what any route accepts. */
const BAD_JSON = ['{', '{"a":', '}', 'nul', 'null', '[]', '[{}]', '"text"', '123', '-1', 'true', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}',
  deep(5000), '{"a":' + '1'.repeat(400) + '}', '1e999', '\u0000', '{"Name":"\\ud800"}', '\ufeff{}'];
/** Values of the wrong type (or out of range) for any field. */
const WRONG_VALUES: unknown[] = [null, true, 0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, '', 'x'.repeat(5000), [], [1, 'a'], {}, { $gt: '' }, '../../etc/passwd', '\u0000'];
/** Content types the routes do not take, with bodies that go with them. */
const WRONG_TYPES: Array<[string, string]> = [
  ['text/plain', 'Username=admin'],
  ['application/xml', '<a/>'],
  ['application/x-www-form-urlencoded', 'Username=admin&Password=x'],
  ['multipart/form-data', '--x\r\n'],
  ['multipart/form-data; boundary=zzz', '--zzz\r\nContent-Disposition: form-data; name="Name"\r\n\r\nunterminated'],
  ['multipart/form-data; boundary=zzz', 'garbage without parts'],
  ['application/json; charset=latin1', '{}'],
  ['application/json', ''],
  ['', '{}'],
  ['*/*', '{}'],
];

function multipart(parts: Array<{ name: string; value: string; filename?: string }>, boundary = 'capstanBoundary'): { rawBody: Buffer; headers: Record<string, string> } {
  const body = parts.map((p) => `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n\r\n${p.value}\r\n`).join('') + `--${boundary}--\r\n`;
  return { rawBody: Buffer.from(body), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** Malformed multipart forms for `POST /api/endpoints`. */
function badForms(): Array<{ rawBody: Buffer; headers: Record<string, string> }> {
  const ok = [{ name: 'Name', value: 'form-env' }, { name: 'EndpointCreationType', value: '4' }];
  return [
    multipart([...ok, { name: 'Unknown', value: '1' }]),
    multipart([...ok, { name: 'TagIds', value: '[1,' }]),
    multipart([...ok, { name: 'TagIds', value: '"abc"' }]),
    multipart([...ok, { name: 'GroupID', value: 'abc' }]),
    multipart([...ok, { name: 'GroupID', value: '-5' }]),
    multipart([...ok, { name: 'EdgeAsync', value: 'maybe' }]),
    multipart([...ok, { name: 'EdgeCheckinInterval', value: '99999999999999999999' }]),
    multipart([...ok, { name: 'ContainerEngine', value: 'rkt' }]),
    multipart([{ name: 'Name', value: 'a' }, { name: 'Name', value: 'b' }, { name: 'EndpointCreationType', value: '1' }]),
    multipart([{ name: 'EndpointCreationType', value: '9' }]),
    multipart([]),
    multipart([...ok, { name: '__proto__', value: 'x' }]),
    multipart([...ok, { name: 'constructor', value: 'x' }]),
    multipart([...ok, { name: 'Evil', value: 'x', filename: 'evil.sh' }]),
    multipart([...ok, { name: 'TLSCACertFile', value: 'x'.repeat(BODY_LIMIT * 2), filename: 'ca.pem' }]),
    multipart([...ok, { name: 'Name', value: 'x'.repeat(100 * 1024) }]),
    { ...multipart(ok), rawBody: multipart(ok).rawBody.subarray(0, 60) },
    { ...multipart(ok), headers: { 'content-type': 'multipart/form-data' } },
    { ...multipart(ok), headers: { 'content-type': 'multipart/form-data; boundary=other' } },
  ];
}

function resolveRef(doc: any, schema: any): any {
  if (schema && typeof schema.$ref === 'string') return resolveRef(doc, doc.components.schemas[schema.$ref.replace('#/components/schemas/', '')]);
  return schema;
}

function attemptsFor(op: Operation): Attempt[] {
  const withIds = (v: string) => op.path.replace(/\{[^}]+\}/g, v);
  const out: Attempt[] = [];
  // Ids: invalid, out of range, unknown, traversal. DELETE on a real id is not malformed input: skipped.
  if (op.path.includes('{')) for (const id of BAD_IDS) out.push({ method: op.method, url: withIds(id) });
  // Query strings.
  for (const q of ['?limit=-1', '?limit=abc', '?start=1e999', '?sort=Bogus', '?order=sideways', '?groupIds=abc', '?tagIds=1,,2', '?edgeAsync=maybe',
    `?search=${'x'.repeat(2000)}`, '?limit=1&limit=2', '?types[]=1', '?__proto__[x]=1', '?x-api-key=', '?endpointIds=%00']) {
    out.push({ method: op.method, url: withIds('999999') + q });
  }
  if (op.method === 'GET' || op.method === 'HEAD') return out;

  // Bodies go to an id that exists where the route has one, so body validation is what answers;
  // DELETE routes take no body and would delete: they get an unknown id instead.
  const url = withIds(op.method === 'DELETE' ? '999999' : '1');
  const json = { 'content-type': 'application/json' };
  for (const raw of BAD_JSON) out.push({ method: op.method, url, rawBody: raw, headers: json });
  for (const [type, raw] of WRONG_TYPES) out.push({ method: op.method, url, rawBody: raw, headers: type ? { 'content-type': type } : {} });
  out.push({ method: op.method, url, rawBody: JSON.stringify({ pad: 'x'.repeat(BODY_LIMIT + 1) }), headers: json });
  out.push({ method: op.method, url, rawBody: Buffer.alloc(BODY_LIMIT + 10, 0x20), headers: { ...json, 'content-length': String(BODY_LIMIT + 10) } });
  for (const [name] of Object.entries(op.bodySchema?.properties ?? {})) {
    for (const value of WRONG_VALUES) out.push({ method: op.method, url, rawBody: JSON.stringify({ [name]: value }), headers: json });
    // Numbers JSON.stringify cannot produce: beyond 2^53 and beyond double range.
    for (const raw of ['123456789012345678901234567890', '1e400', '-0', '0.0000000000000000000000001']) out.push({ method: op.method, url, rawBody: `{"${name}":${raw}}`, headers: json });
  }
  if (op.method === 'POST' && op.path === '/api/endpoints') for (const form of badForms()) out.push({ method: op.method, url, ...form });
  return out;
}

describe('bad input never breaks the gateway', () => {
  let n: TestNode;
  let token: string;
  let operations: Operation[] = [];
  const failures: string[] = [];

  beforeAll(async () => {
    n = await startTestNode({ bodyLimit: BODY_LIMIT, authRateLimit: 100_000 });
    expect((await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
    // Something to hit: an environment, a tag, an API key with id 1.
    expect((await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: 'local', EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock' } })).status).toBe(200);
    expect((await api(n.url, 'POST', '/api/tags', { token, body: { Name: 't' } })).status).toBe(200);
    const doc = (await api(n.url, 'GET', '/api/docs/json')).body;
    for (const [p, ops] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        const body = op.requestBody?.content?.['application/json']?.schema;
        operations.push({ method: method.toUpperCase(), path: p, bodySchema: body ? resolveRef(doc, body) : undefined });
      }
    }
    operations = operations.sort((a, b) => `${a.path} ${a.method}`.localeCompare(`${b.path} ${b.method}`));
  });
  afterAll(async () => {
    await n?.stop();
  });

  function check(a: Attempt, who: string, res: ApiResponse): void {
    const label = `${who} ${a.method} ${a.url.slice(0, 120)} [${a.headers?.['content-type'] ?? '-'}] ${String(a.rawBody ?? '').slice(0, 40)}`;
    if (res.status >= 500) failures.push(`${label} -> ${res.status} ${res.text.slice(0, 200)}`);
    else if (res.status >= 400 && (typeof res.body?.message !== 'string' || !('details' in res.body))) failures.push(`${label} -> ${res.status} without {message, details}: ${res.text.slice(0, 200)}`);
    else if (a.method !== 'HEAD' && res.headers['x-content-type-options'] !== 'nosniff') failures.push(`${label} -> no nosniff header`);
  }

  async function run(attempts: Attempt[], who: string, auth: { token?: string }): Promise<void> {
    const queue = [...attempts];
    const worker = async () => {
      for (let a = queue.shift(); a; a = queue.shift()) {
        let res: ApiResponse;
        try {
          res = await api(n.url, a.method, a.url, { rawBody: a.rawBody, headers: a.headers, ...auth });
        } catch (err) {
          // The server may close the connection on a body it refuses to read (413): not a failure.
          if (/socket|closed|reset|EPIPE/i.test(String((err as Error).message ?? err))) continue;
          throw err;
        }
        check(a, who, res);
        // Signing out as part of the battery revokes the token: take a new one.
        if (auth.token && a.url.startsWith('/api/auth/logout') && res.status === 204) {
          auth.token = token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
        }
      }
    };
    // Logout revokes the shared token, so that route runs alone; the rest in parallel.
    await Promise.all(Array.from({ length: auth.token ? 1 : 8 }, worker));
  }

  it('covers every documented route', () => {
    expect(operations.length).toBeGreaterThanOrEqual(20);
    expect(operations.map((o) => `${o.method} ${o.path}`)).toEqual(expect.arrayContaining(['POST /api/endpoints', 'PUT /api/settings', 'DELETE /api/users/{id}/tokens/{keyId}']));
  });

  it('answers every malformed request anonymously with a 4xx {message, details}', async () => {
    const attempts = operations.flatMap(attemptsFor);
    expect(attempts.length).toBeGreaterThan(500);
    await run(attempts, 'anonymous', {});
    expect(failures).toEqual([]);
  });

  it('answers every malformed request from an administrator with a 4xx {message, details}', async () => {
    const attempts = operations.flatMap(attemptsFor);
    await run(attempts, 'admin', { token });
    expect(failures).toEqual([]);
  });

  it('answers malformed credentials with 401/403, never 500', async () => {
    const headers: Record<string, string>[] = [
      { authorization: 'Bearer' }, { authorization: 'Bearer ' }, { authorization: 'Bearer a.b.c' }, { authorization: `Bearer ${'x'.repeat(10000)}` },
      { authorization: 'Basic YWRtaW46YWRtaW4=' }, { authorization: 'bearer \u00ff' }, { 'x-api-key': 'x' }, { 'x-api-key': 'ptr_' + 'A'.repeat(5000) },
      { 'x-api-key': 'ptr_x', authorization: `Bearer ${token}` }, { authorization: `Bearer ${token}x` },
      { authorization: `Bearer ${token.split('.').slice(0, 2).join('.')}.` },
    ];
    for (const h of headers) {
      for (const url of ['/api/users/me', '/api/endpoints', '/api/settings']) {
        const res = await api(n.url, 'GET', url, { headers: h });
        check({ method: 'GET', url, headers: h }, 'credentials', res);
        expect([401, 403]).toContain(res.status);
      }
    }
    expect(failures).toEqual([]);
  });

  it('still serves requests afterwards', async () => {
    const res = await api(n.url, 'GET', '/api/system/status');
    expect(res.status).toBe(200);
    expect(res.body.Version).toEqual(expect.any(String));
    expect((await api(n.url, 'GET', '/api/users/me', { token })).status).toBe(200);
    // The battery's well-formed updates may rename it, but nothing deleted or broke it.
    expect((await api(n.url, 'GET', '/api/endpoints', { token })).body.map((e: { Id: number }) => e.Id)).toEqual([1]);
    expect((await api(n.url, 'GET', '/api/endpoints/1', { token })).status).toBe(200);
  });
});
