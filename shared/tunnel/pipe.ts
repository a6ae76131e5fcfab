import type { Socket } from 'node:net';
import type { SshChannel } from './ssh2-internals';

/** Byte counts of one piped connection, by direction. */
export interface PipeResult {
  /** Bytes read from the TCP socket and written into the channel. */
  socketToChannel: number;
  /** Bytes read from the channel and written to the TCP socket. */
  channelToSocket: number;
}

/** Called for every chunk that crosses, so callers can keep activity timestamps and counters. */
export type OnBytes = (direction: keyof PipeResult, bytes: number) => void;

/**
 * Joins a TCP socket and an SSH channel both ways with back-pressure and correct half-close: a
 * FIN from the socket becomes CHANNEL_EOF and the other direction keeps flowing, a CHANNEL_EOF
 * becomes a FIN, and CHANNEL_CLOSE is sent once both directions are done. (chisel's own pipe
 * closes both ends at the first EOF, which cuts answers to clients that shut down writing.)
 * An error on either side tears both down. The socket must be created with `allowHalfOpen`.
 * Resolves when both are closed.
 */
export function pipeSocketChannel(socket: Socket, channel: SshChannel, onBytes?: OnBytes): Promise<PipeResult> {
  const result: PipeResult = { socketToChannel: 0, channelToSocket: 0 };
  return new Promise((resolve) => {
    let socketClosed = false;
    let channelClosed = false;
    let channelEof = false;
    let channelFinished = false;
    const settle = () => { if (socketClosed && channelClosed) resolve(result); };
    const closeChannel = () => {
      if (channelClosed) return;
      try { channel.close(); } catch { /* already gone */ }
    };

    socket.on('data', (b: Buffer) => { result.socketToChannel += b.length; onBytes?.('socketToChannel', b.length); });
    channel.on('data', (b: Buffer) => { result.channelToSocket += b.length; onBytes?.('channelToSocket', b.length); });
    socket.pipe(channel);
    channel.pipe(socket);

    // Both directions finished: our EOF is out and the peer's EOF is in.
    const maybeDone = () => { if (channelEof && channelFinished) closeChannel(); };
    channel.on('end', () => { channelEof = true; maybeDone(); });
    channel.on('finish', () => { channelFinished = true; maybeDone(); });

    socket.on('error', () => { socket.destroy(); closeChannel(); });
    channel.on('error', () => { closeChannel(); socket.destroy(); });
    socket.once('close', () => {
      socketClosed = true;
      // A socket gone before it ended cleanly (reset, error) leaves nothing to wait for.
      if (!channelFinished || !channelEof) closeChannel();
      settle();
    });
    channel.once('close', () => {
      channelClosed = true;
      // The peer closed the channel: let what it sent reach the socket, then drop the socket.
      if (socket.writableFinished || socket.destroyed) socket.destroy();
      else socket.once('finish', () => socket.destroy());
      if (!socket.writableEnded) socket.end();
      settle();
    });
  });
}
