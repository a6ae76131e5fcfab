import http from 'node:http';

/** Where and how to reach the Docker Engine API named by DOCKER_HOST. */
export function dockerTarget(dockerHost: string): Pick<http.RequestOptions, 'socketPath' | 'host' | 'port'> {
  const u = new URL(dockerHost);
  if (u.protocol === 'unix:') return { socketPath: u.pathname };
  return { host: u.hostname, port: Number(u.port || 2375) };
}

/** Thrown when the engine cannot be reached, with the address in the message. */
export class DockerUnreachableError extends Error {
  constructor(dockerHost: string, cause: unknown) {
    super(`cannot reach the Docker engine at ${dockerHost}: ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = 'DockerUnreachableError';
  }
}

/** One request to the engine, answered as status + body (for small JSON calls such as snapshots). */
export function dockerRequest(dockerHost: string, method: string, path: string, timeoutMs = 10_000): Promise<{ status: number; body: Buffer }> {
  return dockerCall(dockerHost, { method, path, timeoutMs });
}

/** A request to the engine with an optional JSON body. */
export interface DockerCall {
  method: string;
  /** Path and query, e.g. `/containers/web/stop?t=5`. */
  path: string;
  /** Sent as JSON when defined. */
  body?: unknown;
  /** Default 10 s; stopping a container may take its whole stop timeout. */
  timeoutMs?: number;
}

/** One request to the engine with a method, a path and an optional JSON body; any status resolves. */
export function dockerCall(dockerHost: string, call: DockerCall): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const timeoutMs = call.timeoutMs ?? 10_000;
  const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
  const headers: http.OutgoingHttpHeaders = payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {};
  return new Promise((resolve, reject) => {
    const req = http.request({ ...dockerTarget(dockerHost), method: call.method, path: call.path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The message of an engine error reply: Docker's JSON `message`, else the status and the text. */
export function dockerErrorMessage(status: number, body: Buffer): string {
  const text = body.toString('utf8').trim();
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === 'string' && message) return message;
  } catch { /* not JSON */ }
  return `HTTP ${status}${text ? `: ${text.slice(0, 500)}` : ''}`;
}

/** A GET answering parsed JSON, rejecting on anything but 2xx (the snapshot collector's `DockerGet`). */
export function dockerGetJson(dockerHost: string, timeoutMs = 30_000): (path: string) => Promise<unknown> {
  return async (path) => {
    const res = await dockerCall(dockerHost, { method: 'GET', path, timeoutMs });
    if (res.status < 200 || res.status > 299) throw new Error(`GET ${path}: ${dockerErrorMessage(res.status, res.body)}`);
    return JSON.parse(res.body.toString('utf8'));
  };
}

/** GET /_ping; resolves to the engine's API version, or throws DockerUnreachableError. */
export async function pingDocker(dockerHost: string, timeoutMs = 3000): Promise<string> {
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ ...dockerTarget(dockerHost), method: 'GET', path: '/_ping', timeout: timeoutMs }, resolve);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
    res.resume();
    if (res.statusCode !== 200) throw new Error(`/_ping answered ${res.statusCode}`);
    return String(res.headers['api-version'] ?? '');
  } catch (err) {
    throw new DockerUnreachableError(dockerHost, err);
  }
}
