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
  return new Promise((resolve, reject) => {
    const req = http.request({ ...dockerTarget(dockerHost), method, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
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
