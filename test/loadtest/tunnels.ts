/**
 * The tunnel side of the simulated agents picked for a tunnel storm (inside a worker thread): like
 * the real agent's TunnelManager, a check-in reply saying REQUIRED with credentials not tried yet
 * opens the chisel reverse tunnel with the real client (`agent/tunnel`), decrypting the
 * credentials with the agent's Edge ID and pinning the server key from the Edge key; IDLE closes
 * it. Tunnelled connections reach a small HTTP responder in this thread that stands in for the
 * agent's API (`/_ping`, `/version`, `/info`, and an empty engine for the reads of a snapshot); it
 * answers without checking the signature.
 *
 * Until `arm()` the agents only remember replies: the server asks every newly bound agent for a
 * tunnel to take its first snapshot, and tunnels opened for that would still be open when the
 * storm comes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openTunnel, type Tunnel } from '../../agent/tunnel';
import { decryptCredentials } from '../../shared/protocol';
import type { RawResponse } from './http1';
import { AGENT_VERSION } from './modes';
import { ReplyCache, type TunnelFields } from './replies';

interface StormAgent {
  index: number;
  edgeId: string;
  /** Tunnel fields of the last replies by ETag (a 304 stands for the reply it matched). */
  replies: ReplyCache;
  tried: Set<string>;
  required: boolean;
  opening: boolean;
  tunnel?: Tunnel;
}

/** One tunnel opened: when the agent saw REQUIRED and when the tunnel was up, ms since the run start. */
export interface TunnelOpenEvent {
  agent: number;
  requiredAt: number;
  openAt: number;
}

export interface TunnelCounters {
  agents: number;
  armed: boolean;
  opening: number;
  open: number;
  /** Tunnels opened in all. */
  opened: number;
  /** Opening failed, by message. */
  failed: Record<string, number>;
  /** Tunnels that ended while we had not asked (server close, keepalive timeout). */
  dropped: number;
  /** Closed because a reply said IDLE. */
  closedIdle: number;
  /** Requests the responder answered, by path. */
  served: Record<string, number>;
}

/** The Docker API answers of the stand-in agent. */
const ANSWERS: Record<string, { type: string; body: string }> = {
  '/_ping': { type: 'text/plain; charset=utf-8', body: 'OK' },
  '/version': {
    type: 'application/json',
    body: JSON.stringify({ Version: '24.0.7', ApiVersion: '1.43', MinAPIVersion: '1.12', Os: 'linux', Arch: 'amd64', KernelVersion: '6.1.0', GoVersion: 'go1.20.10' }),
  },
  '/info': {
    type: 'application/json',
    body: JSON.stringify({ ID: 'loadtest', Name: 'loadtest-agent', Containers: 0, ContainersRunning: 0, ContainersPaused: 0, ContainersStopped: 0, Images: 0, ServerVersion: '24.0.7', OperatingSystem: 'loadtest', OSType: 'linux', Architecture: 'x86_64', NCPU: 1, MemTotal: 1073741824, Swarm: { LocalNodeState: 'inactive' } }),
  },
  // The rest of a snapshot (the server takes one through a tunnel it opened for a first snapshot).
  '/containers/json': { type: 'application/json', body: '[]' },
  '/images/json': { type: 'application/json', body: '[]' },
  '/volumes': { type: 'application/json', body: '{"Volumes":[],"Warnings":null}' },
  '/networks': { type: 'application/json', body: '[]' },
};

export class TunnelAgents {
  readonly counters: TunnelCounters;
  private readonly agents = new Map<number, StormAgent>();
  private events: TunnelOpenEvent[] = [];
  private server?: http.Server;
  private port = 0;

  constructor(
    agents: ReadonlyArray<{ index: number; edgeId: string }>,
    private readonly o: {
      /** Tunnel server `host:port` and key fingerprint, from the Edge key. */
      tunnelAddr: string;
      fingerprint: string;
      /** ms since the run start. */
      now: () => number;
      /** Check in now (the real agent does after a failed open or a drop while required). */
      pollSoon: (index: number) => void;
    },
  ) {
    for (const a of agents) this.agents.set(a.index, { index: a.index, edgeId: a.edgeId, replies: new ReplyCache(), tried: new Set(), required: false, opening: false });
    this.counters = { agents: agents.length, armed: false, opening: 0, open: 0, opened: 0, failed: {}, dropped: 0, closedIdle: 0, served: {} };
  }

  /** Starts the stand-in agent API on 127.0.0.1. */
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      // Docker clients may prefix a version: /v1.43/version.
      const path = (req.url ?? '/').split('?')[0].replace(/^\/v[0-9.]+(?=\/)/, '');
      const answer = ANSWERS[path];
      this.counters.served[answer ? path : 'other'] = (this.counters.served[answer ? path : 'other'] ?? 0) + 1;
      // Connection: close, so a call's sockets (proxy, tunnel listener, channel, here) end with it:
      // the server and the tester each hold about 20,000 sockets at the peak otherwise.
      const headers = { 'content-type': answer?.type ?? 'application/json', 'api-version': '1.43', ostype: 'linux', connection: 'close' };
      if (answer) res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : answer.body);
      else res.writeHead(404, headers).end(JSON.stringify({ message: `page not found (the load test's stand-in agent answers ${Object.keys(ANSWERS).join(', ')})` }));
    });
    this.server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      // 1,000 tunnels forward their first request within a second or two: a deep accept queue.
      this.server!.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  has(index: number): boolean {
    return this.agents.has(index);
  }

  /** From now on, REQUIRED opens tunnels. */
  arm(): void {
    this.counters.armed = true;
  }

  /** Tunnel events since the previous call. */
  takeEvents(): TunnelOpenEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  /** An answered check-in (200 or 304) of agent `index`. */
  onReply(index: number, res: RawResponse): void {
    const a = this.agents.get(index);
    if (!a) return;
    const fields = a.replies.read(res);
    if (!fields || !this.counters.armed) return;
    a.required = fields.status === 'REQUIRED';
    if (!a.required) {
      if (a.tunnel) {
        this.counters.closedIdle++;
        void this.closeTunnel(a);
      }
      return;
    }
    if (a.tunnel || a.opening || !fields.credentials || a.tried.has(fields.credentials)) return;
    // Credentials are single-use: a set that was tried is never tried again.
    a.tried.add(fields.credentials);
    void this.open(a, fields);
  }

  private async open(a: StormAgent, f: TunnelFields): Promise<void> {
    const requiredAt = this.o.now();
    a.opening = true;
    this.counters.opening++;
    try {
      const credentials = decryptCredentials(f.credentials, a.edgeId);
      const tunnel = await openTunnel({
        serverAddr: this.o.tunnelAddr, fingerprint: this.o.fingerprint, credentials, remotePort: f.port,
        targetHost: '127.0.0.1', targetPort: this.port, version: AGENT_VERSION,
      });
      a.tunnel = tunnel;
      this.counters.open++;
      this.counters.opened++;
      this.events.push({ agent: a.index, requiredAt, openAt: this.o.now() });
      void tunnel.closed.then(() => {
        if (a.tunnel !== tunnel) return;
        a.tunnel = undefined;
        this.counters.open--;
        this.counters.dropped++;
        // Still wanted: fetch fresh credentials now rather than at the next tick.
        if (a.required) this.o.pollSoon(a.index);
      });
    } catch (err) {
      const msg = (err as Error).message.slice(0, 160);
      this.counters.failed[msg] = (this.counters.failed[msg] ?? 0) + 1;
      this.o.pollSoon(a.index);
    } finally {
      a.opening = false;
      this.counters.opening--;
    }
  }

  private async closeTunnel(a: StormAgent): Promise<void> {
    const t = a.tunnel;
    if (!t) return;
    a.tunnel = undefined;
    this.counters.open--;
    await t.close();
  }

  /** Closes every tunnel and the responder. */
  async close(): Promise<void> {
    // Tunnels still opening are closed when their open settles: wait a little for them.
    for (let i = 0; i < 50 && this.counters.opening > 0; i++) await new Promise((r) => setTimeout(r, 100));
    await Promise.all([...this.agents.values()].filter((a) => a.tunnel).map((a) => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([this.closeTunnel(a), new Promise((r) => (timer = setTimeout(r, 3000)))]).finally(() => clearTimeout(timer));
    }));
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
