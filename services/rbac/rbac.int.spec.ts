import fs from 'node:fs';
import type { ServiceBroker } from 'moleculer';
import { loadConfig, type Config } from '../../shared/config';
import { call, Role, type Principal } from '../../shared/contracts';
import { createBroker } from '../../shared/moleculer';
import { tempDataDir, uniqueNamespace } from '../../test/helpers/ids';
import { stateService } from '../state';
import { rbacService } from '.';

const ADMIN = { Username: 'admin', Password: 'admin-password-123' };
const ALICE = { Username: 'alice', Password: 'alice-password-456' };

function configFor(dataDir: string, namespace: string, nodeID: string, services: Config['services']): Config {
  return loadConfig({}, { dataDir, namespace, nodeID, services, logLevel: 'warn' });
}

/** A broker running state and rbac; `transporter: 'Fake'` (in-memory) when a second replica joins. */
async function startNode(config: Config, transporter?: 'Fake'): Promise<ServiceBroker> {
  const broker = createBroker(config, transporter ? { transporter } : {});
  if (config.services.includes('state')) broker.createService(stateService(config));
  broker.createService(rbacService(config));
  await broker.start();
  return broker;
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The status and message of a rejected call, for assertions on what a client would see. */
async function failure(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: number; message: string };
    return { code: e.code, message: e.message };
  }
  throw new Error('expected the call to fail');
}

describe('rbac with state (embedded store)', () => {
  let dataDir: string;
  let broker: ServiceBroker;
  beforeEach(async () => {
    dataDir = tempDataDir();
    broker = await startNode(configFor(dataDir, uniqueNamespace('rbac'), 'rbac-a', ['state', 'rbac']));
  });
  afterEach(async () => {
    await broker.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function signIn(creds = ADMIN): Promise<{ jwt: string; principal: Principal }> {
    const { jwt } = await call(broker, 'rbac.login', creds);
    return { jwt, principal: await call(broker, 'rbac.authenticate', { jwt }) };
  }

  it('initialises the admin once, enforcing the password length', async () => {
    expect(await call(broker, 'rbac.adminCheck', {})).toEqual({ exists: false });
    expect(await failure(call(broker, 'rbac.adminInit', { Username: 'admin', Password: 'short' }))).toMatchObject({ code: 400 });
    const admin = await call(broker, 'rbac.adminInit', ADMIN);
    expect(admin).toEqual({ Id: expect.any(Number), Username: 'admin', Role: Role.Admin, CreationDate: expect.any(Number) });
    expect(admin).not.toHaveProperty('PasswordHash');
    expect(await call(broker, 'rbac.adminCheck', {})).toEqual({ exists: true });
    expect(await failure(call(broker, 'rbac.adminInit', { Username: 'other', Password: 'another-password-1' }))).toMatchObject({ code: 409 });
  });

  it('signs in with the right password only, with one message for both failures', async () => {
    await call(broker, 'rbac.adminInit', ADMIN);
    const { jwt, principal } = await signIn();
    expect(jwt.split('.')).toHaveLength(3);
    expect(principal).toMatchObject({ username: 'admin', role: Role.Admin, method: 'jwt', jti: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ id: principal.userId, username: 'admin', role: 1, scope: 'default', jti: principal.jti });
    // UserSessionTimeout defaults to 8h.
    expect(Math.abs((claims.exp as number) - (Date.now() / 1000 + 8 * 3600))).toBeLessThan(60);

    const wrongPassword = await failure(call(broker, 'rbac.login', { Username: 'admin', Password: 'not-the-password' }));
    const unknownUser = await failure(call(broker, 'rbac.login', { Username: 'nobody', Password: ADMIN.Password }));
    expect(wrongPassword).toEqual({ code: 401, message: 'Invalid credentials' });
    expect(unknownUser).toEqual(wrongPassword);
  });

  it('authenticates a JWT until logout, and rejects tampered or mixed credentials', async () => {
    await call(broker, 'rbac.adminInit', ADMIN);
    const { jwt, principal } = await signIn();
    // A second call is served from the cache and must give the same answer.
    expect(await call(broker, 'rbac.authenticate', { jwt })).toEqual(principal);

    const [h, p, s] = jwt.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), role: 1, id: 99 })).toString('base64url');
    expect(await failure(call(broker, 'rbac.authenticate', { jwt: `${h}.${forged}.${s}` }))).toMatchObject({ code: 401 });
    expect(await failure(call(broker, 'rbac.authenticate', { jwt: 'not-a-jwt' }))).toMatchObject({ code: 401 });
    expect(await failure(call(broker, 'rbac.authenticate', {}))).toMatchObject({ code: 401 });
    expect(await failure(call(broker, 'rbac.authenticate', { jwt, apiKey: 'ptr_x' }))).toEqual({ code: 403, message: 'Cannot use both an API key and a JWT' });

    expect(await call(broker, 'rbac.logout', { jti: principal.jti! })).toEqual({ ok: true });
    expect(await failure(call(broker, 'rbac.authenticate', { jwt }))).toMatchObject({ code: 401 });
    // A new sign-in still works.
    await signIn();
  });

  it('creates an API key shown once, authenticates with it, and revokes it', async () => {
    await call(broker, 'rbac.adminInit', ADMIN);
    const { principal } = await signIn();
    expect(await failure(call(broker, 'rbac.createApiKey', { principal, userId: principal.userId, description: 'ci', password: 'wrong-password' })))
      .toEqual({ code: 403, message: 'Invalid password' });

    const created = await call(broker, 'rbac.createApiKey', { principal, userId: principal.userId, description: 'ci', password: ADMIN.Password });
    expect(created.rawAPIKey).toMatch(/^ptr_[A-Za-z0-9_-]{43}$/);
    expect(created.apiKey).toEqual({ id: expect.any(Number), userId: principal.userId, description: 'ci', prefix: created.rawAPIKey.slice(0, 7), dateCreated: expect.any(Number), lastUsed: 0 });

    const viaKey = await call(broker, 'rbac.authenticate', { apiKey: created.rawAPIKey });
    expect(viaKey).toMatchObject({ userId: principal.userId, username: 'admin', role: Role.Admin, method: 'apikey', apiKeyId: created.apiKey.id });
    // One character changed (never to itself: a key ending in 'A' made this test pass by accident 1 time in 64).
    const tampered = created.rawAPIKey.slice(0, -1) + (created.rawAPIKey.endsWith('A') ? 'B' : 'A');
    expect(await failure(call(broker, 'rbac.authenticate', { apiKey: tampered }))).toMatchObject({ code: 401 });

    const listed = await call(broker, 'rbac.listApiKeys', { principal, userId: principal.userId });
    expect(listed).toHaveLength(1);
    expect(listed[0]).not.toHaveProperty('digest');
    // The first use was recorded (fire and forget, so give it a moment).
    await new Promise((r) => setTimeout(r, 100));
    expect((await call(broker, 'rbac.listApiKeys', { principal, userId: principal.userId }))[0]!.lastUsed).toBeGreaterThan(0);

    expect(await call(broker, 'rbac.deleteApiKey', { principal, userId: principal.userId, id: created.apiKey.id })).toEqual({ id: created.apiKey.id });
    expect(await failure(call(broker, 'rbac.authenticate', { apiKey: created.rawAPIKey }))).toMatchObject({ code: 401 });
    expect(await call(broker, 'rbac.listApiKeys', { principal, userId: principal.userId })).toEqual([]);
  });

  it('lets only the owner create keys, and only the owner or an admin list or delete them', async () => {
    await call(broker, 'rbac.adminInit', ADMIN);
    const admin = (await signIn()).principal;
    expect(await failure(call(broker, 'rbac.createUser', { ...ALICE, Password: 'short', Role: Role.Standard }))).toMatchObject({ code: 400 });
    const aliceUser = await call(broker, 'rbac.createUser', { ...ALICE, Role: Role.Standard });
    expect(await failure(call(broker, 'rbac.createUser', { ...ALICE, Username: 'ALICE', Role: Role.Standard }))).toMatchObject({ code: 409 });
    const alice = (await signIn(ALICE)).principal;
    expect(alice).toMatchObject({ userId: aliceUser.Id, role: Role.Standard });

    await call(broker, 'rbac.createApiKey', { principal: admin, userId: admin.userId, description: 'admin key', password: ADMIN.Password });
    const aliceKey = await call(broker, 'rbac.createApiKey', { principal: alice, userId: alice.userId, description: 'alice key', password: ALICE.Password });
    // Even an admin cannot mint a key for someone else.
    expect(await failure(call(broker, 'rbac.createApiKey', { principal: admin, userId: alice.userId, description: 'x', password: ADMIN.Password }))).toMatchObject({ code: 403 });

    expect(await failure(call(broker, 'rbac.listApiKeys', { principal: alice, userId: admin.userId }))).toMatchObject({ code: 403 });
    expect(await failure(call(broker, 'rbac.deleteApiKey', { principal: alice, userId: admin.userId, id: 1 }))).toMatchObject({ code: 403 });
    const seenByAdmin = await call(broker, 'rbac.listApiKeys', { principal: admin, userId: alice.userId });
    expect(seenByAdmin.map((k) => k.description)).toEqual(['alice key']);
    expect(await call(broker, 'rbac.deleteApiKey', { principal: admin, userId: alice.userId, id: aliceKey.apiKey.id })).toEqual({ id: aliceKey.apiKey.id });
    expect(await failure(call(broker, 'rbac.authenticate', { apiKey: aliceKey.rawAPIKey }))).toMatchObject({ code: 401 });
  });

  it('lists users without hashes and deletes a user, revoking their sessions at once', async () => {
    await call(broker, 'rbac.adminInit', ADMIN);
    const admin = (await signIn()).principal;
    const aliceUser = await call(broker, 'rbac.createUser', { ...ALICE, Role: Role.Standard });
    const { jwt: aliceJwt } = await signIn(ALICE);

    const users = await call(broker, 'rbac.listUsers', {});
    expect(users.map((u) => u.Username).sort()).toEqual(['admin', 'alice']);
    for (const u of users) expect(Object.keys(u).sort()).toEqual(['CreationDate', 'Id', 'Role', 'Username']);
    expect(await call(broker, 'rbac.getUser', { id: aliceUser.Id })).toEqual(aliceUser);
    expect(await failure(call(broker, 'rbac.getUser', { id: 999 }))).toMatchObject({ code: 404 });

    expect(await failure(call(broker, 'rbac.deleteUser', { id: admin.userId, principal: admin }))).toMatchObject({ code: 400 });
    expect(await call(broker, 'rbac.deleteUser', { id: aliceUser.Id, principal: admin })).toEqual({ Id: aliceUser.Id });
    expect(await failure(call(broker, 'rbac.authenticate', { jwt: aliceJwt }))).toMatchObject({ code: 401 });
    expect(await failure(call(broker, 'rbac.login', ALICE))).toEqual({ code: 401, message: 'Invalid credentials' });
  });
});

describe('rbac replicas', () => {
  let dataDir: string;
  let a: ServiceBroker;
  let b: ServiceBroker;
  beforeEach(async () => {
    dataDir = tempDataDir();
    const ns = uniqueNamespace('rbacrep');
    a = await startNode(configFor(dataDir, ns, 'rbac-a', ['state', 'rbac']), 'Fake');
    b = await startNode(configFor(dataDir, ns, 'rbac-b', ['rbac']), 'Fake');
    // b found a (it waited for state); a must also have discovered b, or a's broadcasts skip it.
    await waitFor(() => a.registry.getServiceList({ onlyAvailable: true }).some((s) => s.name === 'rbac' && s.nodeID === 'rbac-b'));
  });
  afterEach(async () => {
    await b.stop();
    await a.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('drops a session another replica revoked, even while it is cached', async () => {
    await call(a, 'rbac.adminInit', ADMIN);
    const { jwt } = await call(a, 'rbac.login', ADMIN);
    // Resolve on replica b (and cache it there), then log out through replica a.
    const onB = await call(b, 'rbac.authenticate', { jwt }, { nodeID: 'rbac-b' });
    expect(onB.username).toBe('admin');
    await call(a, 'rbac.logout', { jti: onB.jti! }, { nodeID: 'rbac-a' });
    // Broadcasts are delivered asynchronously through the transporter.
    await new Promise((r) => setTimeout(r, 50));
    expect(await failure(call(b, 'rbac.authenticate', { jwt }, { nodeID: 'rbac-b' }))).toMatchObject({ code: 401 });
  });
});
