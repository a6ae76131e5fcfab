/**
 * chisel-compatible reverse tunnel pieces shared by the tunnel server (services/tunnel) and the
 * agent's client (agent/tunnel): wire names and formats, fingerprints, the WebSocket transport,
 * the socket/channel pipe, the few ssh2 extensions chisel needs, and how callers reach an agent
 * through a tunnel (in-process channels or the tunnel node's data listener). See PROTOCOL.md.
 */
export * from './protocol';
export * from './fingerprint';
export * from './contracts';
export { WebSocketDuplex, type WebSocketDuplexOptions } from './ws-duplex';
export { pipeSocketChannel, type PipeResult, type OnBytes } from './pipe';
export { channelAsSocket, type ChannelSocket } from './channel-socket';
export { TunnelHttpAgent, localTunnels, registerLocalTunnels, tunnelHttpAgent, tunnelTarget, type ChannelOpener, type TunnelTarget } from './local';
export {
  DATA_MAX_LINE, DATA_OK, DATA_PREAMBLE, DATA_TIMEOUT_MS, TunnelRefusedError, dialTunnel, formatPreamble, parsePreamble, readLine,
} from './data-path';
export {
  acceptChannels, handleGlobalRequests, openChannel, restoreRemoteIdentOnHeader, sendGlobalRequest, setRemoteIdent, socketOf,
  OPEN_FAILURE, type GlobalReply, type IncomingChannel, type SshChannel,
} from './ssh2-internals';
