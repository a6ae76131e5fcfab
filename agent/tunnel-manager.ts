import type { Logger } from 'pino';
import { decryptCredentials } from '../shared/protocol';
import type { AgentApi } from './api-server';
import type { AgentConfig } from './config';
import type { PollResponse } from './poller';
import { openTunnel, type Tunnel } from './tunnel';

/**
 * Opens the reverse tunnel when a reply says REQUIRED and closes it on IDLE or after
 * EDGE_INACTIVITY_TIMEOUT without activity (interactive sessions count as activity while open).
 * Credentials are single-use: a set that was tried is never tried again, and a tunnel that drops
 * while still required asks for a fresh check-in at once so the server's new credentials arrive.
 */
export class TunnelManager {
  private tunnel: Tunnel | undefined;
  private opening: Promise<void> | undefined;
  private tried = new Set<string>();
  private lastActivity = Date.now();
  private sessions = 0;
  private required = false;
  private readonly checker: NodeJS.Timeout;

  constructor(
    private readonly config: AgentConfig,
    private readonly api: Pick<AgentApi, 'port' | 'serve'>,
    private readonly log: Logger,
    private readonly pollSoon: () => void,
  ) {
    const every = Math.min(30_000, Math.max(1000, Math.floor(config.inactivityTimeoutMs / 2)));
    this.checker = setInterval(() => void this.closeIfIdle(), every);
    this.checker.unref();
  }

  /** Activity seen by the agent API (every request). */
  touch(): void {
    this.lastActivity = Date.now();
  }

  /** An interactive session opened (+1) or ended (-1). */
  session(delta: 1 | -1): void {
    this.sessions += delta;
    this.touch();
  }

  get isOpen(): boolean {
    return !!this.tunnel;
  }

  async onReply(reply: PollResponse): Promise<void> {
    this.required = reply.status === 'REQUIRED';
    if (!this.required) {
      if (this.tunnel) await this.close('the server no longer requires it');
      return;
    }
    if (this.tunnel || this.opening || !this.config.edgeTunnel || !reply.credentials || this.tried.has(reply.credentials)) return;
    this.tried.add(reply.credentials);
    this.opening = this.open(reply).finally(() => (this.opening = undefined));
    await this.opening;
  }

  async stop(): Promise<void> {
    clearInterval(this.checker);
    await this.close('agent stopping');
  }

  private async open(reply: PollResponse): Promise<void> {
    let credentials: string;
    try {
      credentials = decryptCredentials(reply.credentials, this.config.edgeId);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'tunnel credentials do not decrypt with this EDGE_ID');
      return;
    }
    try {
      const tunnel = await openTunnel({
        serverAddr: this.config.key.tunnelAddr, fingerprint: this.config.key.fingerprint, credentials,
        remotePort: reply.port, targetHost: '127.0.0.1', targetPort: this.api.port, version: this.config.agentVersion,
        // The API server takes the tunnel's channels as its connections: no loopback TCP hop.
        serve: (socket) => this.api.serve(socket),
      });
      this.tunnel = tunnel;
      this.touch();
      this.log.info({ port: reply.port }, 'tunnel open');
      tunnel.on('activity', () => this.touch());
      void tunnel.closed.then((end) => {
        if (this.tunnel !== tunnel) return;
        this.tunnel = undefined;
        this.log.warn({ reason: end.reason, err: end.error?.message }, 'tunnel closed');
        // Still wanted: fetch the server's fresh credentials now rather than at the next tick.
        if (this.required) this.pollSoon();
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'tunnel could not be opened');
      this.pollSoon();
    }
  }

  private async close(why: string): Promise<void> {
    const tunnel = this.tunnel;
    if (!tunnel) return;
    this.tunnel = undefined;
    this.log.info({ why }, 'closing tunnel');
    await tunnel.close();
  }

  private async closeIfIdle(): Promise<void> {
    if (this.tunnel && this.sessions === 0 && Date.now() - this.lastActivity > this.config.inactivityTimeoutMs) {
      await this.close(`no activity for ${this.config.inactivityTimeoutMs} ms`);
    }
  }
}
