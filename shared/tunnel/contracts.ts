import { Type, type Static } from '@sinclair/typebox';

/**
 * Contracts of the `tunnel` service: the TypeBox schemas its actions validate with and the
 * results and events other services read. Environment ids are Portainer's positive integers.
 */
export const TunnelIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
export type TunnelIdParams = Static<typeof TunnelIdParams>;

/** `tunnel.openTunnel`: where the agent's reverse remote will listen, and its one-time login. */
export const TunnelOpened = Type.Object({
  /** Port in [49152, 65535) the server listens on (127.0.0.1) once the agent is connected. */
  port: Type.Integer(),
  /** `user:pass`, 8 + 8 characters of [A-Za-z0-9], valid for one SSH login only. */
  credentials: Type.String(),
});
export type TunnelOpened = Static<typeof TunnelOpened>;

/** `tunnel.closeTunnel`: whether there was a tunnel to close. */
export const TunnelClosedResult = Type.Object({ closed: Type.Boolean() });
export type TunnelClosedResult = Static<typeof TunnelClosedResult>;

/** `tunnel.status`. */
export const TunnelStatusInfo = Type.Object({
  /** An agent is connected and the server listens on `127.0.0.1:<port>` for it. */
  open: Type.Boolean(),
  /** The port reserved for the environment, 0 when no tunnel was asked for. */
  port: Type.Integer(),
  /** Last time (ms since epoch) bytes crossed the tunnel or it was opened or connected; 0 if none. */
  lastActivity: Type.Integer(),
});
export type TunnelStatusInfo = Static<typeof TunnelStatusInfo>;

/** Names of the events the tunnel service broadcasts. */
export const TunnelEvents = {
  /** An agent connected and its reverse listener is up: `127.0.0.1:<port>` reaches it now. */
  opened: 'tunnel.opened',
  /** The listener is gone: the tunnel was closed (`closed`) or the agent's session ended (`dropped`). */
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
  }
}
