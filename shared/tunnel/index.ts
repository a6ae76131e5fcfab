/**
 * chisel-compatible reverse tunnel pieces shared by the tunnel server (services/tunnel) and the
 * agent's client (agent/tunnel): wire names and formats, fingerprints, the WebSocket transport,
 * the socket/channel pipe and the few ssh2 extensions chisel needs. See PROTOCOL.md.
 */
export * from './protocol';
export * from './fingerprint';
export * from './contracts';
export { WebSocketDuplex, type WebSocketDuplexOptions } from './ws-duplex';
export { pipeSocketChannel, type PipeResult, type OnBytes } from './pipe';
export { channelAsSocket, type ChannelSocket } from './channel-socket';
export { TunnelHttpAgent, localTunnel, registerLocalTunnel, tunnelHttpAgent, type ChannelOpener } from './local';
export {
  acceptChannels, handleGlobalRequests, openChannel, restoreRemoteIdentOnHeader, sendGlobalRequest, setRemoteIdent, socketOf,
  OPEN_FAILURE, type GlobalReply, type IncomingChannel, type SshChannel,
} from './ssh2-internals';
