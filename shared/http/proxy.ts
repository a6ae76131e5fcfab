import http from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Where a proxied request goes: a Unix socket (the Docker engine) or host:port (a tunnel), the
 * latter with the HTTP agent that opens its connections. Every field is spread into the request's
 * options, so an agent also gets what else the target carries (shared/tunnel `tunnelTarget`: the
 * tunnel's route, which `TunnelHttpAgent` connects by).
 */
export type ProxyTarget = { socketPath: string } | { host: string; port: number; agent?: http.Agent };

/** How to rewrite a proxied request: its path, headers to set, and (lower-case) headers to drop. */
export interface ProxyOptions {
  path?: string;
  headers?: Record<string, string>;
  omit?: readonly string[];
}

/** Hop-by-hop headers that must not be forwarded (RFC 9110 §7.6.1), except on upgrades. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function forwardHeaders(raw: string[], extra: Record<string, string>, keepUpgrade: boolean, omit: readonly string[] = []): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const extraNames = new Set(Object.keys(extra).map((k) => k.toLowerCase()));
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!keepUpgrade && HOP.has(name)) continue;
    if (extraNames.has(name) || omit.includes(name)) continue;
    const prev = out[raw[i]];
    out[raw[i]] = prev === undefined ? raw[i + 1] : ([] as string[]).concat(prev, raw[i + 1]);
  }
  return { ...out, ...extra };
}

/**
 * Streams one HTTP request to `target` and its answer back, without buffering either way: build
 * contexts and archive uploads flow up, logs/events/stats/pull progress flow down as they come.
 *
 * Hand-written because the Docker Engine API's hijacked connections (attach, exec start with
 * `Upgrade: tcp` on POST) are not WebSocket upgrades, which is all http-proxy and its forks
 * proxy; keeping both paths in one small module keeps their header handling identical.
 */
export function proxyRequest(req: http.IncomingMessage, res: http.ServerResponse, target: ProxyTarget, opts: ProxyOptions & { onError?: (err: Error) => void } = {}): void {
  const upstream = http.request({
    ...target, method: req.method, path: opts.path ?? req.url,
    headers: forwardHeaders(req.rawHeaders, opts.headers ?? {}, false, opts.omit),
  }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.statusMessage, forwardHeaders(up.rawHeaders, {}, false));
    // Streamed answers (logs -f, events) must reach the client chunk by chunk.
    res.flushHeaders();
    up.pipe(res);
    up.on('error', (err) => res.destroy(err));
  });
  upstream.on('error', (err) => {
    opts.onError?.(err);
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'The environment did not answer', details: err.message }));
    } else res.destroy(err);
  });
  res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
  req.pipe(upstream);
}

/**
 * Forwards an HTTP upgrade (Docker's `Upgrade: tcp` hijack, or a WebSocket) and then pipes raw
 * bytes both ways until either side closes. `onOpen`/`onClose` let callers keep a tunnel alive
 * for as long as an interactive session lasts.
 */
export function proxyUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, target: ProxyTarget, opts: ProxyOptions & { onOpen?: () => void; onClose?: () => void } = {}): void {
  const upstream = http.request({
    ...target, method: req.method, path: opts.path ?? req.url,
    headers: forwardHeaders(req.rawHeaders, opts.headers ?? {}, true, opts.omit),
  });
  let pendingForUpstream: Buffer = Buffer.alloc(0);
  upstream.on('upgrade', (up, upSocket, upHead) => {
    if (pendingForUpstream.length) upSocket.write(pendingForUpstream);
    const lines = [`HTTP/1.1 ${up.statusCode} ${up.statusMessage}`];
    for (let i = 0; i < up.rawHeaders.length; i += 2) lines.push(`${up.rawHeaders[i]}: ${up.rawHeaders[i + 1]}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (upHead.length) socket.write(upHead);
    opts.onOpen?.();
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      socket.destroy();
      upSocket.destroy();
      opts.onClose?.();
    };
    // Docker's CLI half-closes its side when stdin ends (exec without -i does at once); the output
    // must keep flowing back, so neither socket may end itself when its peer stops writing.
    (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    (upSocket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    upSocket.on('error', close).on('close', close);
    socket.on('error', close).on('close', close);
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  // The upstream refused the upgrade (e.g. 404 for an unknown container): relay its answer.
  upstream.on('response', (up) => {
    const lines = [`HTTP/1.1 ${up.statusCode} ${up.statusMessage}`];
    for (let i = 0; i < up.rawHeaders.length; i += 2) if (!HOP.has(up.rawHeaders[i].toLowerCase())) lines.push(`${up.rawHeaders[i]}: ${up.rawHeaders[i + 1]}`);
    const chunks: Buffer[] = [];
    up.on('data', (c: Buffer) => chunks.push(c));
    up.on('end', () => {
      const body = Buffer.concat(chunks);
      socket.end(`${lines.join('\r\n')}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString('latin1')}`, 'latin1');
    });
  });
  upstream.on('error', (err) => {
    const body = JSON.stringify({ message: 'The environment did not answer', details: err.message });
    socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  socket.on('error', () => upstream.destroy());
  // Node hands what follows the request head to `head`; Docker's hijack requests carry a JSON body
  // (exec start options) that may arrive in later packets. Send exactly Content-Length bytes.
  void readUpgradeBody(socket, head, Number(req.headers['content-length'] ?? 0)).then(({ body, rest }) => {
    upstream.end(body);
    pendingForUpstream = rest;
  }, () => upstream.destroy());
}

/** Reads `length` body bytes of an upgrade request: from `head`, then from the socket if needed. */
function readUpgradeBody(socket: Duplex, head: Buffer, length: number): Promise<{ body: Buffer; rest: Buffer }> {
  // Without a body, everything already read belongs to the upgraded stream.
  if (!(length > 0)) return Promise.resolve({ body: Buffer.alloc(0), rest: head });
  if (head.length >= length) return Promise.resolve({ body: head.subarray(0, length), rest: head.subarray(length) });
  return new Promise((resolve, reject) => {
    const chunks = [head];
    let have = head.length;
    const onData = (c: Buffer) => {
      chunks.push(c);
      have += c.length;
      if (have < length) return;
      socket.off('data', onData).off('error', reject);
      socket.pause();
      const all = Buffer.concat(chunks);
      resolve({ body: all.subarray(0, length), rest: all.subarray(length) });
    };
    socket.on('data', onData).once('error', reject);
  });
}
