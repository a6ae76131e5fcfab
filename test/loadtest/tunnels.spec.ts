import { EventEmitter } from 'node:events';
import { request } from 'undici';
import { encryptCredentials } from '../../shared/protocol';
import type { RawResponse } from './http1';
import { TunnelAgents } from './tunnels';

jest.mock('../../agent/tunnel', () => ({ openTunnel: jest.fn() }));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { openTunnel } = require('../../agent/tunnel') as { openTunnel: jest.Mock };

/** A fake open tunnel: `drop()` ends it as the server would. */
function fakeTunnel() {
  let end!: (e: { reason: string }) => void;
  const closed = new Promise((r) => (end = r));
  return Object.assign(new EventEmitter(), {
    activity: {}, closed,
    close: jest.fn(async () => {
      end({ reason: 'closed' });
      return closed;
    }),
    drop: () => end({ reason: 'error' }),
  });
}

const reply = (status: number, etag: string, body?: object): RawResponse => ({
  status, etag, close: false, body: Buffer.from(body ? JSON.stringify(body) : ''), bytes: 0,
});
const flush = () => new Promise((r) => setImmediate(r));

describe('storm agents (tunnels)', () => {
  const edgeId = 'edge-1';
  let agents: TunnelAgents;
  const pollSoon = jest.fn();

  beforeEach(async () => {
    openTunnel.mockReset();
    pollSoon.mockReset();
    agents = new TunnelAgents([{ index: 7, edgeId }], { tunnelAddr: '127.0.0.1:8000', fingerprint: 'fp', now: () => 1234, pollSoon });
    await agents.start();
  });
  afterEach(() => agents.close());

  it('opens the tunnel once per credentials on REQUIRED, only once armed, and closes it on IDLE', async () => {
    const t = fakeTunnel();
    openTunnel.mockResolvedValue(t);
    const required = { status: 'REQUIRED', port: 61234, credentials: encryptCredentials('user:pass', edgeId), checkin: 5 };
    agents.onReply(7, reply(200, '"a"', required));
    await flush();
    // Not armed yet: the first snapshot's REQUIRED is ignored.
    expect(openTunnel).not.toHaveBeenCalled();
    agents.arm();
    // A 304 stands for the reply it matched.
    agents.onReply(7, reply(304, '"a"'));
    await flush();
    expect(openTunnel).toHaveBeenCalledTimes(1);
    expect(openTunnel.mock.calls[0][0]).toMatchObject({ serverAddr: '127.0.0.1:8000', fingerprint: 'fp', credentials: 'user:pass', remotePort: 61234, targetHost: '127.0.0.1' });
    expect(agents.counters).toMatchObject({ open: 1, opened: 1, opening: 0 });
    expect(agents.takeEvents()).toEqual([{ agent: 7, requiredAt: 1234, openAt: 1234 }]);
    agents.onReply(7, reply(304, '"a"'));
    await flush();
    expect(openTunnel).toHaveBeenCalledTimes(1);
    agents.onReply(7, reply(200, '"b"', { status: 'IDLE', port: 0, credentials: '', checkin: 5 }));
    await flush();
    expect(t.close).toHaveBeenCalled();
    expect(agents.counters).toMatchObject({ open: 0, closedIdle: 1, dropped: 0 });
  });

  it('counts a failed open and a drop, and checks in again at once for both', async () => {
    agents.arm();
    openTunnel.mockRejectedValueOnce(new Error('tunnel server refused the credentials'));
    agents.onReply(7, reply(200, '"a"', { status: 'REQUIRED', port: 1, credentials: encryptCredentials('u:1', edgeId) }));
    await flush();
    expect(agents.counters.failed).toEqual({ 'tunnel server refused the credentials': 1 });
    expect(pollSoon).toHaveBeenCalledWith(7);
    const t = fakeTunnel();
    openTunnel.mockResolvedValueOnce(t);
    agents.onReply(7, reply(200, '"b"', { status: 'REQUIRED', port: 1, credentials: encryptCredentials('u:2', edgeId) }));
    await flush();
    expect(agents.counters.open).toBe(1);
    t.drop();
    await flush();
    expect(agents.counters).toMatchObject({ open: 0, dropped: 1 });
    expect(pollSoon).toHaveBeenCalledTimes(2);
  });

  it('answers the agent API requests the server sends through the tunnel', async () => {
    const port = (agents as unknown as { port: number }).port;
    const ping = await request(`http://127.0.0.1:${port}/_ping`);
    expect(ping.statusCode).toBe(200);
    expect(await ping.body.text()).toBe('OK');
    const version = await request(`http://127.0.0.1:${port}/v1.43/version`);
    expect((await version.body.json() as { ApiVersion: string }).ApiVersion).toBe('1.43');
    const other = await request(`http://127.0.0.1:${port}/containers/x/json`);
    expect(other.statusCode).toBe(404);
    await other.body.dump();
    expect(agents.counters.served).toEqual({ '/_ping': 1, '/version': 1, other: 1 });
  });
});
