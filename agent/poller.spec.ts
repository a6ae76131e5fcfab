import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import { encodeEdgeStatus } from '../shared/protocol';
import type { AgentConfig } from './config';
import { Poller } from './poller';

const log = pino({ level: 'silent' });
const IDLE = encodeEdgeStatus({ status: 'IDLE', port: 0, schedules: [], checkin: 5, credentials: '', stacks: [] });

/**
 * A check-in server without `Connection`/`Keep-Alive` headers (as Capstan's check-in replies are)
 * that, when `dropNext` is set, closes the connection a request arrives on without answering:
 * what an agent sees when the server's idle timeout ends the connection as its request leaves.
 */
class DroppingServer {
  dropNext = false;
  readonly connections: Socket[] = [];
  requests = 0;
  private readonly server = http.createServer((req, res) => {
    this.requests++;
    if (this.dropNext) {
      this.dropNext = false;
      req.socket.destroy();
      return;
    }
    res.removeHeader('connection');
    res.writeHead(200, { etag: IDLE.etag, 'content-type': 'application/json' }).end(IDLE.json);
  });
  url = '';

  async start(): Promise<void> {
    this.server.on('connection', (s: Socket) => this.connections.push(s));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

describe('agent poller', () => {
  let server: DroppingServer;
  let poller: Poller;
  beforeEach(async () => {
    server = new DroppingServer();
    await server.start();
    const config = { key: { apiUrl: server.url, endpointId: 7, tunnelAddr: '', fingerprint: '' }, edgeId: 'host-1', agentVersion: '2.23.0', insecurePoll: false } as unknown as AgentConfig;
    poller = new Poller(config, log, () => undefined);
  });
  afterEach(async () => {
    poller.stop();
    await server.close();
  });

  it('keeps its connection between check-ins, and checks in again on a new one when the server closed the kept one', async () => {
    expect((await poller.pollOnce()).status).toBe('IDLE');
    expect((await poller.pollOnce()).status).toBe('IDLE');
    expect(server.connections).toHaveLength(1);

    server.dropNext = true;
    expect((await poller.pollOnce()).status).toBe('IDLE');
    expect(server.requests).toBe(4);
    expect(server.connections).toHaveLength(2);
  });

  it('does not resend a check-in the server refused on a new connection', async () => {
    // The poller has made no request yet: its first goes out on a new connection.
    server.dropNext = true;
    await expect(poller.pollOnce()).rejects.toThrow(/cannot reach .*socket hang up/);
    expect(server.requests).toBe(1);
  });
});
