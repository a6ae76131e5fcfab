import { api } from '../../../test/helpers/http';
import { startTestNode, type TestNode } from '../../../test/helpers/node';

const ADMIN = { Username: 'admin', Password: 'correct-horse-battery' };
const USER = { Username: 'alice', Password: 'alice-password-1' };

jest.setTimeout(60_000);

describe('commands routes', () => {
  let n: TestNode;
  let token: string;
  let userToken: string;
  const createAsync = async (name: string, async = true) => {
    const res = await api(n.url, 'POST', '/api/endpoints', { token, body: { Name: name, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443', EdgeAsync: async } });
    expect(res.status).toBe(200);
    return res.body.Id as number;
  };

  beforeAll(async () => {
    n = await startTestNode();
    await api(n.url, 'POST', '/api/users/admin/init', { body: ADMIN });
    token = (await api(n.url, 'POST', '/api/auth', { body: ADMIN })).body.jwt;
    await api(n.url, 'POST', '/api/users', { token, body: { ...USER, Role: 2 } });
    userToken = (await api(n.url, 'POST', '/api/auth', { body: USER })).body.jwt;
  });
  afterAll(async () => {
    await n?.stop();
  });

  it('are for administrators only', async () => {
    const id = await createAsync('admins-only');
    const body = { Commands: [{ Type: 'container', ContainerName: 'web', ContainerOperation: 'stop' }] };
    for (const [method, path, b] of [
      ['POST', `/api/endpoints/${id}/commands`, body], ['GET', `/api/endpoints/${id}/commands`], ['GET', `/api/endpoints/${id}/commands/1`],
      ['POST', '/api/commands', { EnvironmentIds: [id], Command: body.Commands[0] }], ['GET', '/api/commands/batches/00000000-0000-4000-8000-000000000000'],
    ] as [string, string, unknown?][]) {
      const res = await api(n.url, method, path, { token: userToken, body: b });
      expect({ method, path, status: res.status }).toEqual({ method, path, status: 403 });
      expect(Object.keys(res.body).sort()).toEqual(['details', 'message']);
    }
    expect((await api(n.url, 'GET', `/api/endpoints/${id}/commands`, { token })).headers['x-total-count']).toBe('0');
  });

  it('answers bad input with a 4xx and {message, details}', async () => {
    const id = await createAsync('strict');
    const standard = await createAsync('standard-mode', false);
    const post = (path: string, body: unknown) => api(n.url, 'POST', path, { token, body });
    const container = { Type: 'container', ContainerName: 'web', ContainerOperation: 'stop' };
    const cases: [string, string, unknown, number][] = [
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: Array.from({ length: 1001 }, () => container) }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'edgeStack' }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ ...container, ContainerOperation: 'pause' }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'dockerRequest', Method: 'GET', Path: '/containers/../../etc' }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'dockerRequest', Method: 'GET', Path: '/a/%2e%2e/b' }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'dockerRequest', Method: 'GET', Path: 'containers/json' }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'dockerRequest', Method: 'PATCH', Path: '/x' }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'dockerRequest', Method: 'GET', Path: '/x', Query: { a: { nested: 1 } } }] }, 400],
      ['POST', `/api/endpoints/${id}/commands`, { Commands: [{ Type: 'dockerRequest', Method: 'GET', Path: `/${'x'.repeat(2048)}` }] }, 400],
      ['POST', `/api/endpoints/${standard}/commands`, { Commands: [container] }, 400],
      ['POST', '/api/endpoints/999999/commands', { Commands: [container] }, 404],
      ['POST', '/api/commands', { EnvironmentIds: [id, id], Command: container }, 400],
      ['POST', '/api/commands', { EnvironmentIds: [], Command: container }, 400],
      ['POST', '/api/commands', { EnvironmentIds: [id, 999999, standard], Command: container }, 400],
      ['POST', '/api/commands', { EnvironmentIds: [id] }, 400],
      ['GET', `/api/endpoints/${id}/commands?status=done`, undefined, 400],
      ['GET', `/api/endpoints/${id}/commands?limit=0`, undefined, 400],
      ['GET', `/api/endpoints/${id}/commands/0`, undefined, 400],
      ['GET', `/api/endpoints/${id}/commands/5`, undefined, 404],
      ['GET', '/api/endpoints/999999/commands', undefined, 404],
      ['GET', '/api/commands/batches/not-a-uuid', undefined, 400],
      ['GET', '/api/commands/batches/00000000-0000-4000-8000-000000000000', undefined, 404],
    ];
    for (const [method, path, body, status] of cases) {
      const res = method === 'POST' ? await post(path, body) : await api(n.url, method, path, { token });
      expect({ path, body, status: res.status }).toEqual({ path, body, status });
      expect(Object.keys(res.body).sort()).toEqual(['details', 'message']);
    }
    const mixed = await post('/api/commands', { EnvironmentIds: [id, 999999, standard], Command: container });
    expect(mixed.body.details).toMatchObject({ NotFound: [999999], NotAsync: [standard] });
    // Nothing was queued by any of them.
    expect((await api(n.url, 'GET', `/api/endpoints/${id}/commands`, { token })).headers['x-total-count']).toBe('0');
  });

  it('documents the routes in the OpenAPI document', async () => {
    const doc = (await api(n.url, 'GET', '/api/docs/json')).body;
    for (const p of ['/api/endpoints/{id}/commands', '/api/commands', '/api/endpoints/{id}/commands/{seq}', '/api/commands/batches/{batchId}']) expect(doc.paths[p]).toBeDefined();
    expect(doc.paths['/api/commands'].post.responses['202']).toBeDefined();
  });
});
