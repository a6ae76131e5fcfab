import { Type, type Static } from '@sinclair/typebox';

/**
 * Contracts of the `tunnel` service: the TypeBox schemas its actions validate with and the
 * results and events other services read. Environment ids are Portainer's positive integers.
 */
export const TunnelIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
export type TunnelIdParams = Static<typeof TunnelIdParams>;

/** Lowest virtual tunnel port: the unprivileged ports, as an agent's reverse remote names them. */
export const VIRTUAL_PORT_MIN = 1024;
/** Highest virtual tunnel port (inclusive). */
export const VIRTUAL_PORT_MAX = 65535;

/** `tunnel.openTunnel`: the tunnel's virtual port and its agent's one-time login. */
export const TunnelOpened = Type.Object({
  /**
   * Virtual port in [1024, 65535], unique among the tunnel node's live tunnels: the agent asks for
   * the reverse remote `R:0.0.0.0:<port>` and the server checks it is this one. Nothing listens on it.
   */
  port: Type.Integer({ minimum: VIRTUAL_PORT_MIN, maximum: VIRTUAL_PORT_MAX }),
  /** `user:pass`, 8 + 8 characters of [A-Za-z0-9], valid for one SSH login only. */
  credentials: Type.String(),
});
export type TunnelOpened = Static<typeof TunnelOpened>;

/**
 * `tunnel.ensureTunnel`: how to reach the environment's agent through its connected tunnel. A
 * caller in the tunnel node's own process opens SSH channels directly; one elsewhere connects to
 * `data` and names the tunnel with `port` and `token` (see shared/tunnel/data-path.ts).
 */
export const TunnelRoute = Type.Object({
  /** The tunnel's virtual port: its name on its node. */
  port: Type.Integer({ minimum: VIRTUAL_PORT_MIN, maximum: VIRTUAL_PORT_MAX }),
  /** Moleculer node ID of the tunnel node that holds it. */
  node: Type.String(),
  /** That node's internal data listener (CAPSTAN_TUNNEL_DATA_*), as the node advertises it. */
  data: Type.Object({ host: Type.String(), port: Type.Integer({ minimum: 1, maximum: 65535 }) }),
  /** Unguessable secret of this tunnel, known only to the node and the callers it answered. */
  token: Type.String(),
});
export type TunnelRoute = Static<typeof TunnelRoute>;

/** `tunnel.closeTunnel`: whether there was a tunnel to close. */
export const TunnelClosedResult = Type.Object({ closed: Type.Boolean() });
export type TunnelClosedResult = Static<typeof TunnelClosedResult>;

/** `tunnel.status`. */
export const TunnelStatusInfo = Type.Object({
  /** An agent is connected and its `config` was accepted: channels to it can be opened. */
  open: Type.Boolean(),
  /** The tunnel's virtual port, 0 when no tunnel was asked for. */
  port: Type.Integer(),
  /** Last time (ms since epoch) bytes crossed the tunnel or it was opened or connected; 0 if none. */
  lastActivity: Type.Integer(),
});
export type TunnelStatusInfo = Static<typeof TunnelStatusInfo>;

/** Names of the events the tunnel service broadcasts. */
export const TunnelEvents = {
  /** An agent connected and its `config` was accepted: the tunnel carries connections now. */
  opened: 'tunnel.opened',
  /** The agent's session is gone: the tunnel was closed (`closed`) or the session ended (`dropped`). */
  closed: 'tunnel.closed',
} as const;

/** Payload of `tunnel.opened`. */
export interface TunnelOpenedEvent { id: number; port: number }
/** Payload of `tunnel.closed`; `dropped` means the environment still wants a tunnel. */
export interface TunnelClosedEvent { id: number; port: number; reason: 'closed' | 'dropped' }

type A<P, R> = { params: P; result: R };
declare module '../contracts/actions' {
  // Declaration merging keeps the tunnel actions in the one typed `call()` map.
  interface ActionMap {
    'tunnel.address': A<Record<string, never>, { port: number }>;
    'tunnel.openTunnel': A<TunnelIdParams, TunnelOpened>;
    'tunnel.closeTunnel': A<TunnelIdParams, TunnelClosedResult>;
    'tunnel.status': A<TunnelIdParams, TunnelStatusInfo>;
    /** Marks the tunnel in use now: a long session through it is open even if no bytes move. */
    'tunnel.touch': A<TunnelIdParams, { open: boolean }>;
    /** Opens (or reuses) the environment's tunnel and resolves once the agent's end is connected. */
    'tunnel.ensureTunnel': A<TunnelIdParams, TunnelRoute>;
  }
}
