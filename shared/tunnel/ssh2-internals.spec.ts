import crypto from 'node:crypto';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { Client, Server, type Connection } from 'ssh2';
import { generateTunnelKey } from '../crypto';
import {
  acceptChannels, handleGlobalRequests, openChannel, sendGlobalRequest, writeChannelData, type GlobalReply, type IncomingChannel, type SshChannel,
} from './ssh2-internals';

/**
 * Pins the ssh2 1.17 internals the tunnel relies on (see ssh2-internals.ts): a real ssh2 client and
 * server joined by an in-memory stream pair, no network.
 */
describe('ssh2 extensions for chisel', () => {
  let server: Server;
  let client: Client;
  let conn: Connection;
  const requests: Array<{ name: string; payload: string }> = [];
  let answer: (name: string, payload: Buffer) => GlobalReply | Promise<GlobalReply>;
  const incoming: IncomingChannel[] = [];

  beforeEach(async () => {
    requests.length = 0;
    incoming.length = 0;
    answer = () => ({ ok: true });
    const [a, b] = asyncPair();
    const serverReady = new Promise<Connection>((resolve) => {
      server = new Server({ hostKeys: [generateTunnelKey()] }, (c) => {
        c.on('authentication', (ctx) => (ctx.method === 'password' && ctx.password === 'pw' ? ctx.accept() : ctx.reject(['password'])));
        c.on('ready', () => {
          handleGlobalRequests(c, (name, payload) => { requests.push({ name, payload: payload.toString() }); return answer(name, payload); });
          resolve(c);
        });
      });
    });
    server.injectSocket(b as unknown as Socket);
    client = new Client();
    const ready = new Promise((resolve, reject) => { client.once('ready', () => resolve(undefined)); client.once('error', reject); });
    client.connect({ sock: a as never, username: 'u', password: 'pw', hostVerifier: () => true });
    acceptChannels(client, 'chisel', (ch) => incoming.push(ch));
    await ready;
    conn = await serverReady;
  });

  afterEach(() => client.end());

  it('sends a global request with a raw payload and gets the reply data back', async () => {
    answer = () => ({ ok: true, data: Buffer.from('pong') });
    const reply = await sendGlobalRequest(client, 'config', Buffer.from('{"Version":"x"}'));
    expect(requests).toEqual([{ name: 'config', payload: '{"Version":"x"}' }]);
    expect(reply).toEqual({ ok: true, data: Buffer.from('pong') });
  });

  it('reports a refusal, and keeps replies in request order when answers resolve out of order', async () => {
    answer = (name) => (name === 'slow'
      ? new Promise((r) => setTimeout(() => r({ ok: true, data: Buffer.from('slow') }), 50))
      : name === 'bad' ? Promise.reject(new Error('nope')) : { ok: true, data: Buffer.from('fast') });
    const [slow, fast, bad] = await Promise.all([
      sendGlobalRequest(client, 'slow', Buffer.alloc(0)),
      sendGlobalRequest(client, 'fast', Buffer.alloc(0)),
      sendGlobalRequest(client, 'bad', Buffer.alloc(0)),
    ]);
    expect(slow.data?.toString()).toBe('slow');
    expect(fast.data?.toString()).toBe('fast');
    expect(bad).toEqual({ ok: false });
  });

  it('opens a server-to-client channel of a custom type and carries data with half-close both ways', async () => {
    const opening = openChannel(conn, 'chisel', Buffer.from('127.0.0.1:9001'));
    await waitFor(() => incoming.length === 1);
    const agentSide = incoming[0].accept();
    const serverSide = await opening;

    const received: Buffer[] = [];
    agentSide.on('data', (b: Buffer) => received.push(b));
    serverSide.end('request');
    await new Promise((r) => agentSide.once('end', r));
    expect(Buffer.concat(received).toString()).toBe('request');

    // The server side ended its writing; it must still read what the agent sends back.
    const answerParts: Buffer[] = [];
    serverSide.on('data', (b: Buffer) => answerParts.push(b));
    const serverEnded = new Promise((r) => serverSide.once('end', r));
    agentSide.end('response');
    await serverEnded;
    expect(Buffer.concat(answerParts).toString()).toBe('response');

    const closed = Promise.all([once(serverSide, 'close'), once(agentSide, 'close')]);
    serverSide.close();
    await closed;
  });

  it('sends pieces as packets built from them, waits for the window and delivers every byte in order', async () => {
    const opening = openChannel(conn, 'chisel', Buffer.from('127.0.0.1:9001'));
    await waitFor(() => incoming.length === 1);
    const agentSide = incoming[0].accept();
    const serverSide = await opening;
    // More than the 2 MiB window, in pieces of every size, some spanning packets.
    const pieces = Array.from({ length: 400 }, (_, i) => crypto.randomBytes([3, 2, 16392, 70_000, 0][i % 5]));
    const total = pieces.reduce((n, p) => n + p.length, 0);
    expect(total).toBeGreaterThan(2 * 1024 * 1024);
    let done = false;
    writeChannelData(serverSide, pieces, () => { done = true; });
    await new Promise((r) => setTimeout(r, 100));
    // Nothing read on the other side yet: the window holds the rest back, and the callback with it.
    expect(done).toBe(false);
    const received: Buffer[] = [];
    agentSide.on('data', (b: Buffer) => received.push(b));
    await waitFor(() => done);
    serverSide.end();
    await new Promise((r) => agentSide.once('end', r));
    expect(Buffer.concat(received).equals(Buffer.concat(pieces))).toBe(true);
  });

  it('rejects the open when the client refuses it, and leaves other channel types to ssh2', async () => {
    const refused = openChannel(conn, 'chisel', Buffer.from('x:1'));
    await waitFor(() => incoming.length === 1);
    incoming[0].reject(2, 'connect failed');
    await expect(refused).rejects.toThrow();
    await expect(openChannel(conn, 'something-else', Buffer.alloc(0))).rejects.toThrow();
    expect(incoming).toHaveLength(1);
  });
});

/** Two joined in-memory streams delivering on a later tick, as sockets do (ssh2's parser is not re-entrant). */
function asyncPair(): [Duplex, Duplex] {
  const make = (): Duplex & { peer?: Duplex } => new Duplex({
    read() { /* pushed by the peer */ },
    write(chunk: Buffer, _enc, cb) { setImmediate(() => { (this as unknown as { peer: Duplex }).peer.push(chunk); cb(); }); },
    final(cb) { setImmediate(() => { (this as unknown as { peer: Duplex }).peer.push(null); cb(); }); },
  });
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

function once(ch: SshChannel, event: string): Promise<void> {
  return new Promise((r) => ch.once(event, () => r()));
}

async function waitFor(cond: () => boolean): Promise<void> {
  const until = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
