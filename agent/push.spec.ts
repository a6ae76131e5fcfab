import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { encodeEdgeStatus } from '../shared/protocol';
import type { AgentConfig } from './config';
import { Poller, type PollResponse } from './poller';
import { PushChannel, type PushChannelOptions } from './push';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const IDLE = encodeEdgeStatus({ status: 'IDLE', port: 0, schedules: [], checkin: 1, credentials: '', stacks: [] });

/** Stands in for the gateway: the check-in route (with or without the push header) and the push upgrade. */
class FakeServer {
  checkins = 0;
  offer = true;
  /** Answer upgrades with this status instead of accepting them. */
  refuse: number | undefined;
  readonly upgrades: { at: number; headers: http.IncomingHttpHeaders }[] = [];
  readonly sockets: WebSocket[] = [];
  onSocket: (ws: WebSocket) => void = (ws) => ws.send(JSON.stringify({ type: 'status', etag: IDLE.etag, body: JSON.parse(IDLE.json) }));
  private readonly server = http.createServer((req, res) => {
    this.checkins++;
    const headers: Record<string, string> = { etag: IDLE.etag, 'content-type': 'application/json' };
    if (this.offer) headers['x-capstan-push'] = '/api/endpoints/7/edge/push';
    if (String(req.headers['if-none-match'] ?? '').includes(IDLE.etag)) res.writeHead(304, headers).end();
    else res.writeHead(200, headers).end(IDLE.json);
  });
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('capstan-push.v1') ? 'capstan-push.v1' : false) });
  url = '';

  async start(): Promise<void> {
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrades.push({ at: Date.now(), headers: req.headers });
      if (this.refuse) return socket.end(`HTTP/1.1 ${this.refuse} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      expect(req.url).toBe('/api/endpoints/7/edge/push');
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.push(ws);
        this.onSocket(ws);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get open(): WebSocket[] {
    return this.sockets.filter((s) => s.readyState === WebSocket.OPEN);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** The standard agent's wiring (as agent/main.ts does it) against the fake server. */
function agentFor(url: string, opts: Partial<PushChannelOptions> = {}) {
  const config = { key: { apiUrl: url, endpointId: 7, tunnelAddr: '', fingerprint: '' }, edgeId: 'host-1', agentVersion: '2.23.0', insecurePoll: false } as unknown as AgentConfig;
  const replies: { via: 'poll' | 'push'; reply: PollResponse }[] = [];
  let via: 'poll' | 'push' = 'poll';
  const events: string[] = [];
  const push = new PushChannel({
    apiUrl: url, edgeId: 'host-1', agentVersion: '2.23.0', insecure: false, log, minBackoffMs: 200, maxBackoffMs: 1000,
    onStatus: (body, etag) => {
      via = 'push';
      return poller.acceptPushed(body as PollResponse, etag).finally(() => (via = 'poll'));
    },
    onNudge: (kind) => events.push(kind),
    onUp: () => {
      events.push('up');
      poller.pause();
    },
    onDown: () => {
      events.push('down');
      poller.resume();
    },
    ...opts,
  });
  const poller: Poller = new Poller(config, log, (reply) => void replies.push({ via, reply }), (p) => push.offer(p));
  return { poller, push, replies, events, stop: () => (poller.stop(), push.stop()) };
}

describe('agent push channel', () => {
  let server: FakeServer;
  let agent: ReturnType<typeof agentFor> | undefined;
  beforeEach(async () => {
    server = new FakeServer();
    await server.start();
  });
  afterEach(async () => {
    agent?.stop();
    agent = undefined;
    await server.close();
  });

  it('polls until a reply offers push, then takes replies from the channel and stops polling', async () => {
    agent = agentFor(server.url);
    agent.poller.start();
    await waitUntil(() => agent!.events.includes('up'));
    expect(server.upgrades[0].headers).toMatchObject({ 'x-portaineragent-edgeid': 'host-1', 'portainer-agent': '2.23.0', 'portainer-agent-platform': '1', 'sec-websocket-protocol': 'capstan-push.v1' });
    await waitUntil(() => agent!.replies.some((r) => r.via === 'push'));
    expect(agent.replies.find((r) => r.via === 'push')!.reply).toEqual(JSON.parse(IDLE.json));
    const polled = server.checkins;
    await sleep(2500); // the reply's interval is 1 s
    expect(server.checkins).toBe(polled);

    // Nudges reach the handler; unknown messages are ignored.
    server.open[0].send('{"type":"commands"}');
    server.open[0].send('{"type":"somethingNew"}');
    server.open[0].send('not json');
    await waitUntil(() => agent!.events.includes('commands'));
  });

  it('polls again at once when the channel drops, and reconnects with a growing, jittered back-off', async () => {
    agent = agentFor(server.url);
    agent.poller.start();
    await waitUntil(() => server.open.length === 1);
    const before = server.checkins;
    server.refuse = 503;
    const dropped = Date.now();
    server.open[0].terminate();
    await waitUntil(() => server.checkins > before);
    expect(Date.now() - dropped).toBeLessThan(500);
    await waitUntil(() => server.upgrades.length >= 5, 10_000);
    const gaps = server.upgrades.slice(1, 5).map((u, i, a) => u.at - (i === 0 ? dropped : a[i - 1].at));
    // Bases 200, 400, 800, 1000 ms (capped); each delay in [base/2, base].
    [200, 400, 800, 1000].forEach((base, i) => {
      expect(gaps[i]).toBeGreaterThanOrEqual(base / 2 - 20);
      expect(gaps[i]).toBeLessThanOrEqual(base + 400);
    });
    // Meanwhile the agent polls on its interval.
    expect(server.checkins).toBeGreaterThan(before + 1);
    server.refuse = undefined;
    await waitUntil(() => server.open.length === 1, 3000);
    await waitUntil(() => agent!.events.filter((e) => e === 'up').length === 2);
  });

  it('stops reconnecting once a reply no longer offers push', async () => {
    agent = agentFor(server.url);
    agent.poller.start();
    await waitUntil(() => server.open.length === 1);
    server.offer = false;
    server.refuse = 404;
    server.open[0].close();
    await waitUntil(() => agent!.events.includes('down'));
    await sleep(1500);
    // At most the one attempt already scheduled before the first poll said "no push".
    expect(server.upgrades.length).toBeLessThanOrEqual(2);
    const n = server.upgrades.length;
    await sleep(1500);
    expect(server.upgrades.length).toBe(n);
  });

  it('drops a connection the server stopped pinging, and falls back to polling', async () => {
    agent = agentFor(server.url, { deadAfterMs: 400 });
    agent.poller.start();
    await waitUntil(() => agent!.events.includes('up'));
    // The fake server never pings: the agent gives up on the silent connection.
    await waitUntil(() => agent!.events.includes('down'), 2000);
  });

  it('never connects anywhere but the API URL', async () => {
    const warnings: string[] = [];
    const channel = new PushChannel({
      apiUrl: server.url, edgeId: 'h', agentVersion: '2.23.0', insecure: false,
      log: { warn: (_o: unknown, m: string) => warnings.push(m), info: () => undefined, debug: () => undefined } as unknown as pino.Logger,
      onStatus: () => undefined, onNudge: () => undefined, onUp: () => undefined, onDown: () => undefined,
    });
    channel.offer('https://elsewhere.example.com/api/endpoints/7/edge/push');
    channel.offer('/not-api/push');
    await sleep(200);
    channel.stop();
    expect(server.upgrades).toHaveLength(0);
    expect(warnings).toHaveLength(2);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await sleep(20);
  }
}
