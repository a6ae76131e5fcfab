/**
 * The agent's side of the reverse tunnel: a chisel v3 compatible client that connects out to the
 * tunnel server, pins its key, and serves the connections the server forwards by dialling the
 * agent's own API. Used by the edge agent when a poll reply says the tunnel is REQUIRED.
 */
export { openTunnel, type OpenTunnelOptions, type Tunnel, type TunnelActivity, type TunnelEnd } from './client';
export { parseServerUrl } from './helpers';
