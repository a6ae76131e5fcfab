import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { OnBytes } from './pipe';
import { writeChannelData, type SshChannel } from './ssh2-internals';

/** An SSH channel that node:http accepts as a connection's socket. */
export type ChannelSocket = SshChannel & Socket;

type WriteArgs = [chunk: Buffer | string, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void];

/**
 * Dresses an SSH channel as the socket of one HTTP connection, so node:http runs straight on it
 * instead of on a loopback TCP connection piped to the channel: the server's HTTP client gets it
 * from an agent's `createConnection`, the agent's HTTP server from `server.emit('connection')`.
 * node:http drives any Duplex, but calls a socket's keep-alive, Nagle, ref and timeout methods
 * (ssh2's own HTTP agents add them the same way). The idle timeout is a real one, as node:http
 * closes idle keep-alive connections with it. Writes queued together — node:http corks a chunk's
 * framing with its data — leave as one SSH packet instead of one per piece. `onBytes` sees every
 * chunk read from the channel (`channelToSocket`) and written to it (`socketToChannel`).
 */
export function channelAsSocket(channel: SshChannel, onBytes?: OnBytes): ChannelSocket {
  const s = channel as ChannelSocket & { _writev?: SshChannel['_writev'] };
  let timer: NodeJS.Timeout | undefined;

  channel.on('data', (b: Buffer) => {
    timer?.refresh();
    onBytes?.('channelToSocket', b.length);
  });
  const write = channel.write;
  s.write = function (this: ChannelSocket, ...args: WriteArgs): boolean {
    const [chunk, encoding] = args;
    timer?.refresh();
    onBytes?.('socketToChannel', typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk.length);
    return (write as (...a: WriteArgs) => boolean).apply(this, args);
  } as ChannelSocket['write'];
  s._writev = (chunks, cb) => writeChannelData(channel, chunks.map((c) => c.chunk as Buffer), cb);

  s.setTimeout = (ms: number, cb?: () => void) => {
    if (cb) {
      if (ms > 0) s.once('timeout', cb);
      else s.removeListener('timeout', cb);
    }
    clearTimeout(timer);
    timer = ms > 0 ? setTimeout(() => s.emit('timeout'), ms).unref() : undefined;
    // http.Agent compares it with its own timeout before setting one.
    (s as { timeout?: number }).timeout = ms;
    return s;
  };
  channel.once('close', () => {
    clearTimeout(timer);
    // A closed TCP socket is destroyed, and node:http (its agent's pool among others) goes by that;
    // ssh2's own destroy() would only send EOF and CLOSE again.
    Duplex.prototype.destroy.call(s);
  });
  s.setNoDelay = () => s;
  s.setKeepAlive = () => s;
  s.ref = () => s;
  s.unref = () => s;
  // node:http ends a connection it will not keep with destroySoon(): what is queued still goes out.
  s.destroySoon = () => {
    s.end();
    if (s.writableFinished) channel.close();
    else s.once('finish', () => channel.close());
  };
  return s;
}
