/**
 * Push channel benchmark: the server memory one push connection costs, and how fast a change
 * reaches every connected agent.
 *
 *   npm run build && node dist/test/bench/push-bench.js [--count 5000] [--kind async|standard|polling] [--concurrency 32]
 *
 * Starts Capstan's embedded default as a child process, creates `--count` Edge environments, binds
 * each with one check-in, then opens one push WebSocket per environment from this process (the wire
 * format of README "Push channel": check-in headers, subprotocol capstan-push.v1). It prints the
 * server's RSS before and after (the difference per connection), then changes the settings so every
 * environment's reply changes and prints the time until every socket got the news.
 *
 * `--kind async` (default) uses async environments: no first snapshot through a tunnel muddies the
 * memory figure, and the change is a command timer (`timers` nudges). `--kind standard` uses
 * standard ones (`status` messages; their first snapshots wait for tunnels nobody opens).
 * `--kind polling` is the comparison: one idle keep-alive TLS connection per agent after one
 * check-in, as a polling agent holds between check-ins.
 */
import fs from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { pool } from '../../shared/concurrency';
import { api } from '../helpers/http';
import { adminToken, startBenchServer } from '../helpers/server';
import { waitFor } from '../helpers/processes';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '5000' },
    kind: { type: 'string', default: 'async' },
    concurrency: { type: 'string', default: '32' },
  },
});
const COUNT = Number(args.count);
const KIND = args.kind as 'async' | 'standard' | 'polling';
const CONCURRENCY = Number(args.concurrency);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const agentHeaders = (id: number) => ({ 'X-PortainerAgent-EdgeID': `bench-agent-${id}`, 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1' });

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+([0-9]+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** One check-in on its own TLS connection, left open and idle (a polling agent between two check-ins). */
function idleCheckin(base: string, id: number): Promise<tls.TLSSocket> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const h = Object.entries(agentHeaders(id)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      sock.write(`GET /api/endpoints/${id}/edge/status HTTP/1.1\r\nHost: ${hostname}\r\n${h}\r\n`);
    });
    let got = '';
    sock.on('data', (d) => {
      got += d.toString();
      if (/\r\n\r\n[^]*\n$/.test(got)) resolve(sock);
    });
    sock.on('error', reject);
  });
}

async function main() {
  const server = await startBenchServer({ CAPSTAN_LOG_LEVEL: 'warn' });
  const pid = server.process.child.pid!;
  const sockets: { terminate(): void }[] = [];
  try {
    const token = await adminToken(server.base, 'admin', 'bench-password-123');
    const ids: number[] = new Array(COUNT);
    let t0 = Date.now();
    await pool(ids, CONCURRENCY, async (_, i) => {
      const res = await api(server.base, 'POST', '/api/endpoints', { token, body: { Name: `push-${i}`, EndpointCreationType: 4, URL: server.base, EdgeAsync: KIND === 'async' } });
      if (res.status !== 200) throw new Error(`creating environment ${i}: ${res.status} ${res.text}`);
      ids[i] = res.body.Id;
    });
    // Bind every environment to its agent now, so the memory figure below is the connections' alone.
    await pool(ids, CONCURRENCY, async (id) => {
      const res = KIND === 'async'
        ? await api(server.base, 'POST', '/api/endpoints/edge/async', { headers: agentHeaders(id), body: { endpointId: id } })
        : await api(server.base, 'GET', `/api/endpoints/${id}/edge/status`, { headers: agentHeaders(id) });
      if (res.status !== 200) throw new Error(`binding ${id}: ${res.status} ${res.text}`);
    });
    console.log(`\nCapstan push channel benchmark (${KIND}) against ${server.base}`);
    console.log(`  created and bound ${COUNT} Edge environments in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(10_000);
    const before = rssMiB(pid);

    if (KIND === 'polling') {
      t0 = Date.now();
      await pool(ids, CONCURRENCY, async (id) => void sockets.push({ terminate: (s => () => s.destroy())(await idleCheckin(server.base, id)) }));
      console.log(`  ${COUNT} idle keep-alive TLS connections after one check-in each, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await sleep(15_000);
      const after = rssMiB(pid);
      console.log(`  server RSS ${before.toFixed(0)} MiB before, ${after.toFixed(0)} MiB with the connections: ${((after - before) * 1024 / COUNT).toFixed(1)} KiB per connection`);
      return;
    }

    // The first message (current reply, or a commands nudge); then the news after the settings change.
    const first = new Set<number>();
    const changed = new Set<number>();
    t0 = Date.now();
    await pool(ids, CONCURRENCY, async (id) => {
      const ws = new WebSocket(`${server.base.replace('https:', 'wss:')}/api/endpoints/${id}/edge/push`, 'capstan-push.v1', {
        rejectUnauthorized: false, perMessageDeflate: false, headers: agentHeaders(id),
      });
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (!first.has(id)) first.add(id);
        else if (m.type === 'timers' || (m.type === 'status' && m.body.checkin === 42)) changed.add(id);
      });
      ws.on('error', () => undefined);
      sockets.push(ws);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('unexpected-response', (_q, res) => reject(new Error(`push ${id}: HTTP ${res.statusCode}`)));
      });
    });
    await waitFor(async () => first.size === COUNT, 120_000, 'every first message');
    console.log(`  ${COUNT} push connections open, each with its first message, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(15_000);
    const after = rssMiB(pid);
    console.log(`  server RSS ${before.toFixed(0)} MiB before, ${after.toFixed(0)} MiB with the connections: ${((after - before) * 1024 / COUNT).toFixed(1)} KiB per connection`);

    t0 = Date.now();
    const body = KIND === 'async' ? { Edge: { CommandInterval: 42 } } : { EdgeAgentCheckinInterval: 42 };
    const put = await api(server.base, 'PUT', '/api/settings', { token, body });
    if (put.status !== 200) throw new Error(`PUT /api/settings: ${put.status} ${put.text}`);
    await waitFor(async () => changed.size === COUNT, 60_000, 'every agent to hear of the settings change');
    console.log(`  the change reached all ${COUNT} agents ${Date.now() - t0} ms after PUT /api/settings (${KIND === 'async' ? 'timers nudges' : 'status messages'})`);
    const env = await api(server.base, 'GET', `/api/endpoints/${ids[0]}`, { token });
    console.log(`  environment ${ids[0]}: Status ${env.body.Status} (1 = up) on push heartbeats only`);
  } finally {
    for (const ws of sockets) ws.terminate();
    await server.process.kill();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
