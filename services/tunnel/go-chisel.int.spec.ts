import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request, routeOf, startHttpUpstream, type Upstream } from './test-fixtures';
import { startTunnelServer, type TestTunnelServer } from './test-server';

/**
 * Interop with Go's SSH stack, the one Portainer's agent (chisel) runs on: testdata/chisel-client.go
 * performs chisel 1.10's client handshake (`SSH-chisel-v3-client`, `config` JSON, `ping`, `chisel`
 * channels dialled from their extra data). Runs where `go` and Debian's Go packages for
 * x/crypto and gorilla/websocket are installed; skipped elsewhere.
 */
function buildGoClient(): string | undefined {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gochisel-')), 'chisel-client');
  try {
    execFileSync('go', ['build', '-o', out, path.join(__dirname, 'testdata', 'chisel-client.go')], {
      env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOCACHE: path.join(os.tmpdir(), 'gochisel-cache') },
      stdio: 'ignore', timeout: 120_000,
    });
    return out;
  } catch {
    return undefined;
  }
}

const binary = buildGoClient();
const maybe = binary ? describe : describe.skip;
jest.setTimeout(60_000);

maybe('Go chisel-protocol client against the tunnel server', () => {
  let node: TestTunnelServer;
  let upstream: Upstream;
  const children: Array<ReturnType<typeof spawn>> = [];

  beforeAll(async () => {
    node = await startTunnelServer();
    upstream = await startHttpUpstream();
  });

  afterAll(async () => {
    for (const c of children) c.kill();
    await node.close();
    await upstream.close();
  });

  /** Runs the Go client; resolves at `until` on stdout, or at exit. */
  function runGo(args: string[], until?: string): Promise<{ out: string; code?: number | null }> {
    const child = spawn(binary!, args);
    children.push(child);
    let out = '';
    return new Promise((resolve) => {
      child.stdout.on('data', (b: Buffer) => { out += b; if (until && out.includes(until)) resolve({ out }); });
      child.on('exit', (code) => resolve({ out, code }));
    });
  }

  it('connects with Go\'s identification line, gets pong, and serves the tunnel', async () => {
    const { port, credentials } = node.registry.open(1);
    const [user, pass] = credentials.split(':');
    const run = await runGo([node.serverAddr, node.fingerprint, user, pass, String(port), '127.0.0.1', String(upstream.port)], 'CONNECTED');
    expect(run.out).toContain('PING: true pong <nil>');
    // Through the data listener, as a gateway in another process reaches it.
    const route = routeOf(node.registry, 1, 'go-test', node.data);
    expect((await request(route, 'GET', '/hello')).body.toString()).toBe('hello from upstream');
    const body = crypto.randomBytes(8 * 1024 * 1024);
    expect((await request(route, 'POST', '/echo', body)).body.equals(body)).toBe(true);
    // Reused credentials: Go reports the refused login.
    const again = await runGo([node.serverAddr, node.fingerprint, user, pass, String(port), '127.0.0.1', String(upstream.port)]);
    expect(again.out).toContain('unable to authenticate');
  });

  it('gets the refusal text of a config outside the allowed remote, as chisel\'s client prints it', async () => {
    const { port, credentials } = node.registry.open(2);
    const other = port === 65535 ? 65534 : port + 1;
    const run = await runGo([node.serverAddr, node.fingerprint, ...credentials.split(':'), String(other), '127.0.0.1', '1']);
    expect(run.out).toContain(`CONFIG-REFUSED: access to 'R:0.0.0.0:${other}' denied`);
  });
});
