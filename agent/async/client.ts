import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { ASYNC_PATH, type AsyncRequestBody, type AsyncResponse } from './wire';

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);

/** Who the agent is, as every request's headers say (reference 1.6). */
export interface AsyncClientOptions {
  apiUrl: string;
  edgeId: string;
  agentVersion: string;
  /** EDGE_INSECURE_POLL: accept any server certificate. */
  insecure: boolean;
  /** Per request; default 30 s (a full snapshot of a busy host is a large upload). */
  timeoutMs?: number;
}

/** What one exchange gave: the decoded reply on 200 (and the push path it offered), the server's message otherwise. */
export type ExchangeResult =
  | { status: 200; reply: AsyncResponse; bytesSent: number; push?: string }
  | { status: number; message: string; bytesSent: number };

/** The network failed before any reply (connection refused, timeout, TLS). */
export class ExchangeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExchangeError';
  }
}

/**
 * `POST {apiUrl}/api/endpoints/edge/async` over one keep-alive connection (reference 2.1): the
 * poll's identification headers, JSON, gzip at best compression when a snapshot is inside.
 */
export class AsyncClient {
  private readonly agent: http.Agent;
  private readonly target: URL;

  constructor(private readonly opts: AsyncClientOptions) {
    this.target = new URL(ASYNC_PATH, opts.apiUrl);
    this.agent = this.target.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: !opts.insecure })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  /** Where requests go. */
  get url(): string {
    return this.target.href;
  }

  /** Whether the server is reached over plain HTTP (worth a warning). */
  get plainHttp(): boolean {
    return this.target.protocol !== 'https:';
  }

  /** Sends one request; resolves with any HTTP status, rejects with ExchangeError on network failure. */
  async send(body: AsyncRequestBody): Promise<ExchangeResult> {
    const json = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {
      'X-PortainerAgent-EdgeID': this.opts.edgeId,
      'Portainer-Agent': this.opts.agentVersion,
      'Portainer-Agent-Platform': '1',
      'X-PortainerAgent-TimeZone': Intl.DateTimeFormat().resolvedOptions().timeZone || 'Local',
      'X-PortainerAgent-Update-ID': '0',
      'Content-Type': 'application/json',
    };
    let payload = json;
    if (body.snapshot) {
      payload = await gzip(json, { level: zlib.constants.Z_BEST_COMPRESSION });
      headers['Content-Encoding'] = 'gzip';
    }
    headers['Content-Length'] = payload.length;
    const res = await this.post(headers, payload);
    let text = res.body;
    if (/gzip/i.test(String(res.headers['content-encoding'] ?? ''))) text = await gunzip(text);
    const raw = text.toString('utf8');
    if (res.status !== 200) {
      let message = raw.trim().slice(0, 500);
      try {
        const m = (JSON.parse(raw) as { message?: unknown; details?: unknown });
        if (typeof m.message === 'string') message = typeof m.details === 'string' && m.details ? `${m.message}: ${m.details}` : m.message;
      } catch { /* not JSON */ }
      return { status: res.status, message: message || '(empty body)', bytesSent: payload.length };
    }
    let reply: AsyncResponse;
    try {
      reply = raw.trim() ? (JSON.parse(raw) as AsyncResponse) : {};
    } catch (err) {
      return { status: 502, message: `unreadable reply: ${(err as Error).message}`, bytesSent: payload.length };
    }
    const push = [res.headers['x-capstan-push']].flat()[0];
    return { status: 200, reply: reply && typeof reply === 'object' ? reply : {}, bytesSent: payload.length, ...(push ? { push } : {}) };
  }

  close(): void {
    this.agent.destroy();
  }

  private post(headers: Record<string, string | number>, payload: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    const mod = this.target.protocol === 'https:' ? https : http;
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = mod.request(this.target, { method: 'POST', headers, agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (err) => reject(new ExchangeError(`reply from ${this.target.origin} broke off: ${err.message}`, { cause: err })));
      });
      req.on('timeout', () => req.destroy(new Error(`no reply within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new ExchangeError(`cannot reach ${this.target.origin}: ${err.message}`, { cause: err })));
      req.end(payload);
    });
  }
}
