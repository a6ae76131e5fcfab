import { Agent, request as undiciRequest } from 'undici';

/** An HTTPS client for tests that accepts the server's self-signed certificate. */
export const insecureAgent = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 1000 });

export interface ApiResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

/** Sends one request and parses a JSON answer when there is one. */
export async function api<T = any>(
  base: string,
  method: string,
  path: string,
  opts: { body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string>; token?: string; apiKey?: string } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.apiKey) headers['x-api-key'] = opts.apiKey;
  let body: string | Buffer | undefined = opts.rawBody;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await undiciRequest(base + path, { method: method as any, headers, body, dispatcher: insecureAgent });
  const text = await res.body.text();
  let parsed: any = undefined;
  if (text && String(res.headers['content-type'] ?? '').includes('json')) parsed = JSON.parse(text);
  return { status: res.statusCode, headers: res.headers, body: parsed as T, text };
}
