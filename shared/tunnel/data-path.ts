import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TunnelRoute } from './contracts';

/**
 * The wire of a tunnel node's internal data listener (services/tunnel/data-listener.ts), through
 * which a caller in another process reaches an agent: it connects, sends one line
 * `CAPSTAN-TUNNEL/1 <port> <token>\n` naming the tunnel by its virtual port and proving it may use
 * it with the token `tunnel.ensureTunnel` gave it; the node answers `OK\n` once a `chisel` channel
 * to the agent is open, after which the connection carries raw bytes both ways with half-close, or
 * `ERR <reason>\n` and closes without opening anything.
 */
export const DATA_PREAMBLE = 'CAPSTAN-TUNNEL/1';
/** The node's answer when the channel is open. */
export const DATA_OK = 'OK';
/** Longest preamble or answer line; anything longer is not ours. */
export const DATA_MAX_LINE = 256;
/** Budget for connecting, the preamble and opening the channel, on both sides. */
export const DATA_TIMEOUT_MS = 10_000;

const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

/** The data listener refused the connection (its reason), or answered something else. */
export class TunnelRefusedError extends Error {
  constructor(reason: string) {
    super(`the tunnel node refused the connection: ${reason}`);
    this.name = 'TunnelRefusedError';
  }
}

/** The preamble line naming tunnel `port` with its `token`. */
export function formatPreamble(port: number, token: string): string {
  return `${DATA_PREAMBLE} ${port} ${token}\n`;
}

/** The tunnel a preamble line (without its newline) names; undefined for anything malformed. */
export function parsePreamble(line: string): { port: number; token: string } | undefined {
  const parts = line.split(' ');
  if (parts.length !== 3 || parts[0] !== DATA_PREAMBLE || !/^[0-9]{1,5}$/.test(parts[1]) || !TOKEN.test(parts[2])) return undefined;
  return { port: Number(parts[1]), token: parts[2] };
}

/**
 * Reads one `\n`-terminated line (returned without it) in paused mode and puts back whatever came
 * after it, so the stream then flows from the first byte that is not part of the line to whoever
 * reads it next (a pipe, or node:http). Rejects on a longer line or an early end.
 */
export function readLine(stream: Duplex, max = DATA_MAX_LINE): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: Error | undefined, line?: string) => {
      stream.off('readable', onReadable).off('error', finish).off('end', onEnd).off('close', onEnd);
      if (err) reject(err);
      else resolve(line!);
    };
    const onEnd = () => finish(new Error('the connection closed before a whole line arrived'));
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        const nl = buf.indexOf(10);
        if (nl >= 0) {
          if (nl + 1 < buf.length) stream.unshift(buf.subarray(nl + 1));
          return finish(undefined, buf.subarray(0, nl).toString('latin1'));
        }
        if (buf.length > max) return finish(new Error(`a line longer than ${max} bytes`));
      }
    };
    stream.on('readable', onReadable).on('error', finish).on('end', onEnd).on('close', onEnd);
  });
}

/**
 * A connection to the agent of tunnel `route`, through its node's data listener: the socket once
 * the node answered OK, ready for node:http (or any byte stream). Rejects with
 * {@link TunnelRefusedError} when the node refuses, or after `timeoutMs` without an answer.
 */
export function dialTunnel(route: Pick<TunnelRoute, 'port' | 'token' | 'data'>, timeoutMs = DATA_TIMEOUT_MS): Promise<net.Socket> {
  const socket = net.connect({ host: route.data.host, port: route.data.port, noDelay: true });
  const onTimeout = () => socket.destroy(new Error(`no answer from the tunnel node's data listener ${route.data.host}:${route.data.port} within ${timeoutMs} ms`));
  socket.setTimeout(timeoutMs, onTimeout);
  socket.write(formatPreamble(route.port, route.token));
  return readLine(socket).then((line) => {
    socket.setTimeout(0);
    socket.off('timeout', onTimeout);
    if (line === DATA_OK) return socket;
    socket.destroy();
    throw new TunnelRefusedError(line.startsWith('ERR ') ? line.slice(4) : `unexpected answer ${JSON.stringify(line.slice(0, 64))}`);
  }, (err: Error) => {
    socket.destroy();
    throw err;
  });
}
