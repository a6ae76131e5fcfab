import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import selfsigned from 'selfsigned';
import WebSocket, { WebSocketServer } from 'ws';
import type { RawResponse } from './http1';
import { BACKOFF, backoffDelay, openingFailure, PushAgents } from './push';

describe('reconnect back-off', () => {
  it('doubles from 1 s to 60 s, each delay in [1/2, 1] of it', () => {
    expect([0, 1, 2, 5, 6, 20].map((n) => backoffDelay(n, 0.999999))).toEqual([1000, 2000, 4000, 32_000, 60_000, 60_000]);
    expect([0, 1, 6].map((n) => backoffDelay(n, 0))).toEqual([500, 1000, 30_000]);
    expect(backoffDelay(3, 0.5, { minMs: 10, maxMs: 1000 })).toBe(60);
    expect(BACKOFF).toEqual({ minMs: 1000, maxMs: 60_000, stableMs: 60_000 });
  });
});

const until = async (what: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('push agents against a WebSocket server', () => {
  let server: https.Server;
  let port: number;
  /** `noProtocol`: a 101 without the subprotocol the agent asked for. */
  let noProtocol = false;
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('capstan-push.v1') && !noProtocol ? 'capstan-push.v1' : false) });
  let refuse = false;
  const requests: IncomingMessage[] = [];
  const sockets: WebSocket[] = [];
  /** The TLS socket under each accepted WebSocket, to break the protocol or end the connection without a close frame. */
  const raw: Duplex[] = [];
  /** Close codes the server received. */
  const closes: number[] = [];
  /** Closed after each test, passed or not. */
  const open: PushAgents[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((a) => a.close()));
  });

  beforeAll(async () => {
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' } as never);
    server = https.createServer({ key: pems.private, cert: pems.cert });
    server.on('upgrade', (req, socket, head) => {
      requests.push(req);
      if (refuse) return void socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 16\r\n\r\n{"message":"no"}');
      wss.handleUpgrade(req, socket, head, (ws) => {
        sockets.push(ws);
        raw.push(socket);
        ws.on('close', (code) => closes.push(code));
        ws.send('{"type":"status","etag":"e1","body":{"status":"IDLE","port":0,"checkin":7,"credentials":"","stacks":[]}}');
        ws.send('{"type":"commands"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const ws of sockets) ws.terminate();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const offer = (path?: string): RawResponse => ({ status: 200, etag: 'p1', push: path, close: false, body: Buffer.from('{"status":"IDLE","checkin":5}'), bytes: 0 });

  function agents() {
    const calls: string[] = [];
    const pushed: Array<[string, number]> = [];
    let t = 0;
    const a = new PushAgents([{ index: 3, endpointId: 7, edgeId: 'edge-7', port }], {
      host: '127.0.0.1', insecure: true, now: () => (t += 10),
      suspend: (i) => calls.push(`suspend ${i}`), resume: (i) => calls.push(`resume ${i}`), dropPoll: (i) => calls.push(`drop ${i}`),
      acceptPushed: (_i, etag, checkin) => pushed.push([etag, checkin]),
    });
    return { a, calls, pushed };
  }

  it('opens the channel a check-in offers, stops polling, reads messages, answers pings, and falls back when it drops', async () => {
    refuse = false;
    requests.length = 0;
    const { a, calls, pushed } = agents();
    open.push(a);
    a.onReply(3, offer('/api/endpoints/7/edge/push'));
    await until(() => a.counters.open === 1 && a.counters.messages.commands === 1);
    const req = requests[0];
    expect(req.url).toBe('/api/endpoints/7/edge/push');
    expect(req.headers).toMatchObject({ 'x-portaineragent-edgeid': 'edge-7', 'portainer-agent': '2.23.0', 'portainer-agent-platform': '1', 'sec-websocket-protocol': 'capstan-push.v1' });
    expect(req.headers['sec-websocket-extensions']).toBeUndefined();
    expect(calls).toEqual(['drop 3', 'suspend 3']);
    expect(pushed).toEqual([['e1', 7]]);
    expect(a.counters).toMatchObject({ offered: 1, opened: 1, openByPort: { [port]: 1 }, messages: { status: 1, commands: 1 }, statuses: { IDLE: 1 } });

    const ws = sockets.at(-1)!;
    let pong = '';
    ws.once('pong', (d) => (pong = d.toString()));
    ws.ping('hi');
    await until(() => pong === 'hi');
    expect(a.counters.pings).toBe(1);
    ws.send('{"type":"status","etag":"e2","body":{"status":"REQUIRED","port":61001,"checkin":7,"credentials":"c1","stacks":[]}}');
    await until(() => a.counters.statuses.REQUIRED === 1);
    const events = a.takeEvents();
    expect(events.opens.length).toBe(3);
    // One status change: REQUIRED, by push (the first IDLE is no change).
    expect([events.status[0], events.status[2], events.status[3]]).toEqual([3, 1, 1]);

    // The server replaces the connection: the agent polls at once and reconnects after its back-off.
    ws.close(4000, 'replaced');
    await until(() => a.counters.dropped['close 4000'] === 1);
    expect(calls.slice(2)).toEqual(['resume 3']);
    await until(() => a.counters.opened === 2, 3000);
    expect(a.takeEvents().opens.length).toBe(3);
  });

  it('counts a refused opening by its status, keeps polling, and stops retrying once replies no longer offer the channel', async () => {
    refuse = true;
    requests.length = 0;
    const { a, calls } = agents();
    open.push(a);
    a.onReply(3, offer('/api/endpoints/7/edge/push'));
    await until(() => a.counters.failed['HTTP 503'] === 1);
    expect(a.counters.firstErrors['HTTP 503']).toBe('{"message":"no"}');
    expect(calls).toEqual(['drop 3']);
    // Not offered any more: the pending retry is dropped.
    a.onReply(3, offer(undefined));
    expect(a.counters.offered).toBe(0);
    await new Promise((r) => setTimeout(r, 1200));
    expect(requests.length).toBe(1);
    // An offer that is not an API path is ignored.
    a.onReply(3, offer('https://elsewhere.example/x'));
    expect(a.counters).toMatchObject({ offered: 0, connecting: 0 });
  });

  it('fails an opening whose 101 lacks the subprotocol, and drops a channel whose server breaks the framing', async () => {
    refuse = false;
    noProtocol = true;
    const { a, calls } = agents();
    open.push(a);
    try {
      a.onReply(3, offer('/api/endpoints/7/edge/push'));
      await until(() => a.counters.failed.protocol === 1);
      expect(a.counters.firstErrors.protocol).toBe('Server sent no subprotocol');
      expect(a.counters.open).toBe(0);
    } finally {
      noProtocol = false;
    }
    // Its back-off (0.5-1 s) over, it opens; then a frame with a reserved opcode arrives.
    await until(() => a.counters.open === 1, 3000);
    raw.at(-1)!.write(Buffer.from([0x83, 0x00]));
    await until(() => a.counters.dropped.protocol === 1);
    expect(a.counters).toMatchObject({ open: 0, connecting: 0 });
    expect(a.counters.firstErrors.protocol).toBe('Server sent no subprotocol');
    expect(calls).toEqual(['drop 3', 'drop 3', 'suspend 3', 'resume 3']);
  });

  it('tells a connection that ended without a close frame from a close code, and says going away at the end', async () => {
    refuse = false;
    const { a } = agents();
    open.push(a);
    a.onReply(3, offer('/api/endpoints/7/edge/push'));
    await until(() => a.counters.open === 1);
    raw.at(-1)!.end();
    await until(() => a.counters.dropped['connection lost'] === 1);
    await until(() => a.counters.open === 1, 3000);
    closes.length = 0;
    await a.close();
    await until(() => closes.length === 1);
    expect(closes).toEqual([1001]);
    // Closed by the tester: not a drop.
    expect(a.counters.dropped).toEqual({ 'connection lost': 1 });
  });
});

describe('failed openings and drops, by kind', () => {
  it('names timeouts, connections the server ended, and the checks of the 101 that failed', () => {
    expect(openingFailure(new Error('Opening handshake has timed out'), false)).toBe('timeout');
    expect(openingFailure(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), true)).toBe('connection closed');
    expect(openingFailure(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), true)).toBe('connection reset');
    expect(openingFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), false)).toBe('connection refused');
    expect(openingFailure(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), false)).toBe('tls');
    expect(openingFailure(new Error('Server sent no subprotocol'), true)).toBe('protocol');
  });
});
