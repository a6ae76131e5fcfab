import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { Redis } from 'ioredis';
import { api } from '../test/helpers/http';
import { startTestNode, tempDataDir, uniqueNamespace, type TestNode } from '../test/helpers/node';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

jest.setTimeout(60_000);

const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };
/** The routes that must answer without credentials; every other documented route must not. */
const PUBLIC_OPERATIONS = [
  'POST /api/auth', 'GET /api/users/admin/check', 'POST /api/users/admin/init', 'GET /api/system/status', 'GET /api/status',
  // Edge agents have no user credentials: the Edge ID check is their authentication.
  'GET /api/endpoints/:id/edge/status', 'GET /api/endpoints/:id/status', 'POST /api/endpoints/edge/async',
  // Capstan agents' push channel: a WebSocket upgrade admitted like a check-in (a plain GET is a 426).
  'GET /api/endpoints/:id/edge/push',
];

/** A multipart/form-data body as Portainer's clients send it (string fields, optional files). */
function multipart(fields: Record<string, string>, files: Record<string, string> = {}): { rawBody: Buffer; headers: Record<string, string> } {
  const boundary = `----capstan${Math.random().toString(16).slice(2)}`;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  for (const [k, v] of Object.entries(files)) {
    parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"; filename="${k}.pem"\r\nContent-Type: application/octet-stream\r\n\r\n${v}\r\n`);
  }
  parts.push(`--${boundary}--\r\n`);
  return { rawBody: Buffer.from(parts.join('')), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** TLS handshake facts: the certificate fingerprint, protocol and ALPN. */
function handshake(url: string, opts: tls.ConnectionOptions = {}): Promise<{ fingerprint: string; protocol: string | null; alpn: string | false }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false, ...opts }, () => {
      const out = { fingerprint: socket.getPeerCertificate().fingerprint256, protocol: socket.getProtocol(), alpn: socket.alpnProtocol ?? false };
      socket.end();
      resolve(out);
    });
    socket.on('error', reject);
  });
}

describe('gateway over HTTPS', () => {
  const dataDir = tempDataDir('capstan-gw-');
  let n: TestNode;
  let token: string;
  let alice = { id: 0, token: '' };
  const login = async (creds = ADMIN) => {
    const res = await api(n.url, 'POST', '/api/auth', { body: creds });
    expect(res.status).toBe(200);
    return res.body.jwt as string;
  };

  beforeAll(async () => {
    n = await startTestNode({ dataDir, authRateLimit: 1000 });
  });
  afterAll(async () => {
    await n?.stop();
  });

  it('runs the first-admin and sign-in flow', async () => {
    let res = await api(n.url, 'GET', '/api/users/admin/check');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ message: expect.any(String), details: expect.anything() });

    res = await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ Id: 1, Username: 'admin', Role: 1, CreationDate: expect.any(Number) });
    expect(res.text).not.toContain('Password');

    expect((await api(n.url, 'GET', '/api/users/admin/check')).status).toBe(204);
    res = await api(n.url, 'POST', '/api/users/admin/init', { body: { Username: 'other', Password: 'another-password-1' } });
    expect(res.status).toBe(409);
    expect(res.body.message).toEqual(expect.any(String));

    // Portainer answers 422 "Invalid credentials"; either client error is acceptable, never a token.
    expect([401, 422]).toContain((await api(n.url, 'POST', '/api/auth', { body: { ...ADMIN, Password: 'wrong-password-123' } })).status);
    token = await login();
    res = await api(n.url, 'GET', '/api/users/me', { token });
    expect(res.status).toBe(200);
    expect(res.body.Username).toBe('admin');

    expect((await api(n.url, 'POST', '/api/auth/logout', { token })).status).toBe(204);
    res = await api(n.url, 'GET', '/api/users/me', { token });
    expect(res.status).toBe(401);
    expect(res.body.message).toEqual(expect.any(String));
    token = await login();
  });

  it('answers 401 on every non-public route without credentials, and 403 to a standard user on admin routes', async () => {
    // The app's own route table (every served route, HEAD and docs included) ...
    const table = n.node.gateway!.app.routeTable;
    expect(table.length).toBeGreaterThanOrEqual(30);
    const publicRoutes = new Set(table.filter((r) => r.public).map((r) => `${r.method} ${r.url}`));
    for (const op of PUBLIC_OPERATIONS) expect(publicRoutes).toContain(op);
    const allowed = (r: string) => PUBLIC_OPERATIONS.includes(r.replace(/^HEAD /, 'GET ')) || r.split(' ')[1].startsWith('/api/docs');
    expect([...publicRoutes].filter((r) => !allowed(r))).toEqual([]);
    // ... and the published document agree on which routes are public.
    const doc = (await api(n.url, 'GET', '/api/docs/json')).body;
    const documentedPublic: string[] = [];
    for (const [p, ops] of Object.entries<Record<string, { security?: unknown[] }>>(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) if (Array.isArray(op.security) && op.security.length === 0) documentedPublic.push(`${method.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`);
    }
    expect(documentedPublic.sort()).toEqual([...PUBLIC_OPERATIONS].sort());

    for (const route of table.filter((r) => !r.public)) {
      const url = route.url.replace(/:[A-Za-z]+/g, '1');
      const variants: Record<string, string>[] = [{}, { authorization: 'Bearer not.a.jwt' }, { 'x-api-key': 'ptr_notakey' }, { authorization: 'Basic YWRtaW46YWRtaW4=' }];
      for (const headers of variants) {
        const res = await api(n.url, route.method, url, { headers });
        expect({ route: `${route.method} ${url}`, headers, status: res.status }).toEqual({ route: `${route.method} ${url}`, headers, status: 401 });
        if (route.method === 'HEAD') continue;
        expect(Object.keys(res.body).sort()).toEqual(['details', 'message']);
        expect(res.body.message).toEqual(expect.any(String));
        if (Object.keys(headers).length === 0) expect(res.body).toEqual({ message: 'Unauthorized', details: expect.any(String) });
      }
    }

    const created = await api(n.url, 'POST', '/api/users', { token, body: { Username: 'alice', Password: 'alice-password-1', Role: 2 } });
    expect(created.status).toBe(200);
    alice = { id: created.body.Id, token: await login({ Username: 'alice', Password: 'alice-password-1' }) };
    for (const [method, url] of [['GET', '/api/users'], ['POST', '/api/endpoints'], ['GET', '/api/settings'], ['DELETE', '/api/tags/1'], ['PUT', '/api/endpoint_groups/1']]) {
      const res = await api(n.url, method, url, { token: alice.token, body: method === 'GET' || method === 'DELETE' ? undefined : {} });
      expect({ method, url, status: res.status }).toEqual({ method, url, status: 403 });
    }
    // Self or admin only; nothing is revealed about another user.
    expect((await api(n.url, 'GET', `/api/users/${alice.id}`, { token: alice.token })).status).toBe(200);
    expect((await api(n.url, 'GET', '/api/users/1', { token: alice.token })).status).toBe(403);
  });

  it('creates, lists, uses and revokes API keys', async () => {
    let res = await api(n.url, 'POST', '/api/users/1/tokens', { token, body: { description: 'ci', password: ADMIN.Password } });
    expect(res.status).toBe(200);
    const { rawAPIKey, apiKey } = res.body;
    expect(rawAPIKey).toEqual(expect.any(String));
    expect(apiKey).toEqual(expect.objectContaining({ id: expect.any(Number), userId: 1, description: 'ci' }));

    res = await api(n.url, 'GET', '/api/users/1/tokens', { token });
    expect(res.status).toBe(200);
    expect(res.body.map((k: { id: number }) => k.id)).toContain(apiKey.id);
    expect(res.text).not.toContain('digest');
    expect(res.text).not.toContain(rawAPIKey);

    expect((await api(n.url, 'GET', '/api/users/me', { apiKey: rawAPIKey })).body.Username).toBe('admin');
    expect((await api(n.url, 'GET', `/api/users/me?x-api-key=${encodeURIComponent(rawAPIKey)}`)).status).toBe(200);
    expect((await api(n.url, 'GET', '/api/users/me', { apiKey: rawAPIKey, token })).status).toBe(403);
    // Logging out with an API key is a no-op: the key keeps working.
    expect((await api(n.url, 'POST', '/api/auth/logout', { apiKey: rawAPIKey })).status).toBe(204);
    expect((await api(n.url, 'GET', '/api/endpoints', { apiKey: rawAPIKey })).status).toBe(200);

    expect((await api(n.url, 'DELETE', `/api/users/1/tokens/${apiKey.id}`, { token })).status).toBe(204);
    res = await api(n.url, 'GET', '/api/users/me', { apiKey: rawAPIKey });
    expect(res.status).toBe(401);
    expect(res.body.message).toEqual(expect.any(String));
  });

  let edgeId = 0;
  it('creates an Edge environment from a multipart form with a Portainer EdgeKey', async () => {
    const tag = await api(n.url, 'POST', '/api/tags', { token, body: { Name: 'edge' } });
    expect(tag.status).toBe(200);
    const form = multipart(
      { Name: 'edge-1', EndpointCreationType: '4', URL: n.url, GroupID: '1', TagIds: `[${tag.body.ID}]`, EdgeCheckinInterval: '7', ContainerEngine: 'docker', EdgeAsync: 'false', TLS: 'false' },
      { TLSCACertFile: '-----BEGIN CERTIFICATE-----\nignored\n-----END CERTIFICATE-----\n' },
    );
    const res = await api(n.url, 'POST', '/api/endpoints', { token, ...form });
    expect(res.status).toBe(200);
    const env = res.body;
    edgeId = env.Id;
    expect(env).toEqual(expect.objectContaining({ Name: 'edge-1', Type: 4, GroupId: 1, TagIds: [tag.body.ID], EdgeCheckinInterval: 7 }));

    const key: string = env.EdgeKey;
    expect(key).toMatch(/^[A-Za-z0-9+/]+$/); // standard alphabet, no padding
    const fields = Buffer.from(key, 'base64').toString('utf8').split('|');
    expect(fields).toHaveLength(4);
    const [url, tunnelAddr, fingerprint, id] = fields;
    expect(url).toBe(n.url);
    expect(tunnelAddr).toMatch(/^127\.0\.0\.1:[0-9]+$/);
    expect(fingerprint).toHaveLength(44);
    expect(fingerprint.endsWith('=')).toBe(true);
    expect(Number(id)).toBe(env.Id);

    const unknown = await api(n.url, 'POST', '/api/endpoints', { token, ...multipart({ Name: 'x', EndpointCreationType: '4', Bogus: '1' }) });
    expect(unknown.status).toBe(400);
    expect(unknown.body.message).toEqual(expect.any(String));
  });

  it('does environment CRUD and paginates, searches and sorts the list', async () => {
    for (const name of ['charlie', 'alpha', 'delta', 'bravo']) {
      const res = await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: name, EndpointCreationType: 1, URL: 'unix:///var/run/docker.sock' } });
      expect(res.status).toBe(200);
      expect(res.body.Type).toBe(1);
    }
    let res = await api(n.url, 'GET', '/api/endpoints?start=0&limit=2&sort=Name&order=asc', { token });
    expect(res.status).toBe(200);
    expect(res.body.map((e: { Name: string }) => e.Name)).toEqual(['alpha', 'bravo']);
    expect(res.headers['x-total-count']).toBe('5');
    expect(res.headers['x-total-available']).toBe('5');

    res = await api(n.url, 'GET', '/api/endpoints?start=2&limit=2&sort=Name&order=asc', { token });
    expect(res.body.map((e: { Name: string }) => e.Name)).toEqual(['charlie', 'delta']);

    res = await api(n.url, 'GET', '/api/endpoints?search=ha&sort=Name&order=desc', { token });
    expect(res.body.map((e: { Name: string }) => e.Name)).toEqual(['charlie', 'alpha']);
    expect(res.headers['x-total-count']).toBe('2');
    expect(res.headers['x-total-available']).toBe('5');

    res = await api(n.url, 'GET', '/api/endpoints?types=4', { token });
    expect(res.body.map((e: { Id: number }) => e.Id)).toEqual([edgeId]);
    expect(res.text).not.toContain('"Raw"');

    const alpha = (await api(n.url, 'GET', '/api/endpoints?search=alpha', { token })).body[0];
    res = await api(n.url, 'PUT', `/api/endpoints/${alpha.Id}`, { token, body: { Name: 'alpha-2', PublicURL: 'docker.example.com' } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expect.objectContaining({ Id: alpha.Id, Name: 'alpha-2', PublicURL: 'docker.example.com' }));
    expect((await api(n.url, 'GET', `/api/endpoints/${alpha.Id}`, { token })).body.Name).toBe('alpha-2');

    expect((await api(n.url, 'DELETE', `/api/endpoints/${alpha.Id}`, { token })).status).toBe(204);
    res = await api(n.url, 'GET', `/api/endpoints/${alpha.Id}`, { token });
    expect(res.status).toBe(404);
    expect(res.body.message).toEqual(expect.any(String));
    expect((await api(n.url, 'GET', '/api/endpoints', { token })).headers['x-total-count']).toBe('4');
  });

  it('shows standard users only the environments they have access to', async () => {
    let res = await api(n.url, 'GET', '/api/endpoints', { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual([]);
    expect(res.headers['x-total-count']).toBe('0');
    const all = (await api(n.url, 'GET', '/api/endpoints?sort=Name', { token })).body as Array<{ Id: number; Name: string }>;
    const bravo = all.find((e) => e.Name === 'bravo')!;
    const charlie = all.find((e) => e.Name === 'charlie')!;
    expect((await api(n.url, 'GET', `/api/endpoints/${bravo.Id}`, { token: alice.token })).status).toBe(403);

    res = await api(n.url, 'PUT', `/api/endpoints/${bravo.Id}`, { token, body: { UserAccessPolicies: { [alice.id]: { RoleId: 0 } } } });
    expect(res.status).toBe(200);
    res = await api(n.url, 'GET', '/api/endpoints', { token: alice.token });
    expect(res.body.map((e: { Id: number }) => e.Id)).toEqual([bravo.Id]);
    expect(res.headers['x-total-count']).toBe('1');
    expect(res.headers['x-total-available']).toBe('1');
    expect((await api(n.url, 'GET', `/api/endpoints/${bravo.Id}`, { token: alice.token })).status).toBe(200);
    expect((await api(n.url, 'GET', `/api/endpoints/${charlie.Id}`, { token: alice.token })).status).toBe(403);
  });

  it('manages groups and tags', async () => {
    let res = await api(n.url, 'GET', '/api/endpoint_groups', { token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expect.arrayContaining([expect.objectContaining({ Id: 1, Name: 'Unassigned' })]));

    res = await api(n.url, 'POST', '/api/endpoint_groups', { token, body: { Name: 'prod', Description: 'production', AssociatedEndpoints: [edgeId] } });
    expect(res.status).toBe(200);
    const group = res.body;
    expect(group).toEqual(expect.objectContaining({ Name: 'prod', Description: 'production' }));
    expect((await api(n.url, 'GET', `/api/endpoints/${edgeId}`, { token })).body.GroupId).toBe(group.Id);

    res = await api(n.url, 'PUT', `/api/endpoint_groups/${group.Id}`, { token, body: { Name: 'production' } });
    expect(res.status).toBe(200);
    expect((await api(n.url, 'GET', `/api/endpoint_groups/${group.Id}`, { token })).body.Name).toBe('production');
    expect((await api(n.url, 'DELETE', `/api/endpoint_groups/${group.Id}`, { token })).status).toBe(204);
    expect((await api(n.url, 'GET', `/api/endpoint_groups/${group.Id}`, { token })).status).toBe(404);
    expect((await api(n.url, 'GET', `/api/endpoints/${edgeId}`, { token })).body.GroupId).toBe(1);

    res = await api(n.url, 'POST', '/api/tags', { token, body: { Name: 'temporary' } });
    expect(res.status).toBe(200);
    const tagId = res.body.ID;
    expect((await api(n.url, 'GET', '/api/tags', { token })).body.map((t: { Name: string }) => t.Name)).toEqual(expect.arrayContaining(['edge', 'temporary']));
    expect((await api(n.url, 'DELETE', `/api/tags/${tagId}`, { token })).status).toBe(204);
    expect((await api(n.url, 'GET', '/api/tags', { token })).body.map((t: { Name: string }) => t.Name)).not.toContain('temporary');
  });

  it('reads and changes settings', async () => {
    let res = await api(n.url, 'GET', '/api/settings', { token });
    expect(res.status).toBe(200);
    expect(res.body.EdgeAgentCheckinInterval).toBe(5);
    res = await api(n.url, 'PUT', '/api/settings', { token, body: { EdgeAgentCheckinInterval: 12 } });
    expect(res.status).toBe(200);
    expect(res.body.EdgeAgentCheckinInterval).toBe(12);
    expect((await api(n.url, 'GET', '/api/settings', { token })).body.EdgeAgentCheckinInterval).toBe(12);
  });

  it('serves status, the OpenAPI document and the security header', async () => {
    for (const p of ['/api/system/status', '/api/status']) {
      const res = await api(n.url, 'GET', p);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ Version: expect.any(String), InstanceID: expect.any(String) });
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    const missing = await api(n.url, 'GET', '/api/no/such/route');
    expect(missing.status).toBe(404);
    expect(missing.body.message).toEqual(expect.any(String));
    expect(missing.headers['x-content-type-options']).toBe('nosniff');

    const doc = await api(n.url, 'GET', '/api/docs/json');
    expect(doc.status).toBe(200);
    expect(doc.body.info.title).toBe('Capstan');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/endpoints', '/api/endpoints/{id}', '/api/auth', '/api/users/{id}/tokens']));
    expect(Object.keys(doc.body.components.securitySchemes).sort()).toEqual(['apiKey', 'jwt']);
    expect(Object.keys(doc.body.paths['/api/endpoints'].post.requestBody.content)).toEqual(expect.arrayContaining(['application/json', 'multipart/form-data']));
    const ui = await api(n.url, 'GET', '/api/docs');
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('<html');
  });

  it('speaks TLS 1.2+ with ECDHE suites only and no HTTP/2', async () => {
    const ok = await handshake(n.url, { ALPNProtocols: ['h2', 'http/1.1'] });
    expect(ok.protocol === 'TLSv1.2' || ok.protocol === 'TLSv1.3').toBe(true);
    expect(ok.alpn).not.toBe('h2');
    expect((await handshake(n.url, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).protocol).toBe('TLSv1.2');
    await expect(handshake(n.url, { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256' })).rejects.toThrow();
    await expect(handshake(n.url, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })).rejects.toThrow();
    const keyFile = path.join(dataDir, 'certs', 'key.pem');
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  it('keeps users, environments, settings and the certificate across a restart', async () => {
    const before = await handshake(n.url);
    const instance = (await api(n.url, 'GET', '/api/system/status')).body.InstanceID;
    await n.stop({ keepData: true });
    n = await startTestNode({ dataDir, authRateLimit: 1000 });

    expect((await handshake(n.url)).fingerprint).toBe(before.fingerprint);
    expect((await api(n.url, 'GET', '/api/system/status')).body.InstanceID).toBe(instance);
    expect((await api(n.url, 'GET', '/api/users/admin/check')).status).toBe(204);
    token = await login();
    const envs = await api(n.url, 'GET', '/api/endpoints?sort=Name', { token });
    expect(envs.body.map((e: { Name: string }) => e.Name)).toEqual(['bravo', 'charlie', 'delta', 'edge-1']);
    expect((await api(n.url, 'GET', '/api/settings', { token })).body.EdgeAgentCheckinInterval).toBe(12);
    expect((await api(n.url, 'GET', '/api/users', { token })).body.map((u: { Username: string }) => u.Username).sort()).toEqual(['admin', 'alice']);
  });
});

describe('sign-in rate limit', () => {
  let n: TestNode;
  beforeAll(async () => {
    n = await startTestNode(); // the default: 10 attempts per minute per client address
  });
  afterAll(async () => {
    await n?.stop();
  });

  it('answers 429 to the 11th sign-in within the window', async () => {
    expect(n.config.authRateLimit).toBe(10);
    await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN });
    for (let i = 1; i <= 10; i++) {
      const res = await api(n.url, 'POST', '/api/auth', { body: { ...ADMIN, Password: `wrong-password-${i}` } });
      expect({ attempt: i, rejected: [401, 422].includes(res.status) }).toEqual({ attempt: i, rejected: true });
    }
    const res = await api(n.url, 'POST', '/api/auth', { body: ADMIN });
    expect(res.status).toBe(429);
    expect(res.body).toEqual({ message: expect.any(String), details: expect.any(String) });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    // Other routes are not limited.
    expect((await api(n.url, 'GET', '/api/system/status')).status).toBe(200);
  });
});

describe('sign-in rate limit shared by two gateways (NATS + Redis)', () => {
  const namespace = uniqueNamespace('gwrl');
  let a: TestNode;
  let b: TestNode;
  let redis: Redis;
  beforeAll(async () => {
    const common = { namespace, transporter: NATS_URL, redisUrl: REDIS_URL, authRateLimit: 4 };
    a = await startTestNode({ ...common, nodeID: `${namespace}-a` });
    b = await startTestNode({ ...common, nodeID: `${namespace}-b`, services: ['gateway'] });
    await b.node.broker.waitForServices(['state', 'rbac'], 15_000);
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    if (redis) {
      const keys = await redis.keys(`${namespace}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });

  it('counts attempts on every gateway against one limit', async () => {
    expect((await api(b.url, 'POST', '/api/users/admin/init', { body: ADMIN })).status).toBe(200);
    for (let i = 0; i < 4; i++) {
      const res = await api(i % 2 ? b.url : a.url, 'POST', '/api/auth', { body: { ...ADMIN, Password: `wrong-password-${i}` } });
      expect({ attempt: i, rejected: [401, 422].includes(res.status) }).toEqual({ attempt: i, rejected: true });
    }
    for (const url of [a.url, b.url]) {
      const res = await api(url, 'POST', '/api/auth', { body: ADMIN });
      expect(res.status).toBe(429);
      expect(res.body.message).toEqual(expect.any(String));
    }
    expect((await redis.keys(`${namespace}:rate-limit:*`)).length).toBeGreaterThan(0);
  });
});
