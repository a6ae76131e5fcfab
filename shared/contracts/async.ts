import { Type, type Static } from '@sinclair/typebox';
import { Id } from './common';
import { AgentCommand, CommandAck } from './commands';
import { durationMs, type Settings } from './settings';

/*
 * Edge async mode (reference section 2): the one exchange an async agent makes,
 * `POST /api/endpoints/edge/async`, as it travels from the gateway to polling, and the timers
 * the reply sets.
 */

/** Per-environment timer overrides, seconds (0: take the settings' value). */
export const AsyncIntervals = Type.Object({
  Ping: Type.Integer({ minimum: 0 }),
  Snapshot: Type.Integer({ minimum: 0 }),
  Command: Type.Integer({ minimum: 0 }),
});
export type AsyncIntervals = Static<typeof AsyncIntervals>;

/** Timers when neither the environment nor `Settings.Edge` sets them: ping and commands each minute. */
export const DEFAULT_ASYNC_PING_S = 60;
export const DEFAULT_ASYNC_COMMAND_S = 60;

/** The settings' side of the timers: `Settings.Edge`, the snapshot timer falling back to `SnapshotInterval`. */
export function settingsAsyncIntervals(s: Pick<Settings, 'Edge' | 'SnapshotInterval'>): AsyncIntervals {
  return {
    Ping: s.Edge.PingInterval || DEFAULT_ASYNC_PING_S,
    Snapshot: s.Edge.SnapshotInterval || Math.max(1, Math.round(durationMs(s.SnapshotInterval) / 1000)),
    Command: s.Edge.CommandInterval || DEFAULT_ASYNC_COMMAND_S,
  };
}

/** The timers an environment's agent runs: its own overrides, else the settings'. */
export function effectiveAsyncIntervals(own: AsyncIntervals, settings: AsyncIntervals): AsyncIntervals {
  return { Ping: own.Ping || settings.Ping, Snapshot: own.Snapshot || settings.Snapshot, Command: own.Command || settings.Command };
}

/** How often an async agent is heard from at the least: its shortest timer (the "online" rule uses it). */
export const asyncHeartbeatInterval = (i: AsyncIntervals): number => Math.min(i.Ping, i.Snapshot, i.Command);

/** The Capstan extension of an async request: what the agent ran, and up to which sequence number. */
export const CapstanAsyncExtension = Type.Object({
  seq: Type.Optional(Type.Integer({ minimum: 0 })),
  acks: Type.Optional(Type.Array(CommandAck, { maxItems: 1000 })),
});
export type CapstanAsyncExtension = Static<typeof CapstanAsyncExtension>;

/** `polling.asyncExchange` params: the request as the gateway read it (snapshot parts packed). */
export const AsyncExchangeParams = Type.Object({
  endpointId: Id,
  edgeId: Type.Optional(Type.String({ maxLength: 1024 })),
  agentVersion: Type.Optional(Type.String({ maxLength: 128 })),
  platform: Type.Optional(Type.String({ maxLength: 16 })),
  /** RFC 3339 watermark; present when the agent's command timer fired. */
  commandTimestamp: Type.Optional(Type.String({ maxLength: 64 })),
  /** A full snapshot, packed (gzip + base64). */
  snapshotFull: Type.Optional(Type.String({ maxLength: 900_000 })),
  /** A JSON patch from the previous snapshot, packed the same way, and that snapshot's hash. */
  snapshotPatch: Type.Optional(Type.String({ maxLength: 900_000 })),
  snapshotHash: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
  capstan: Type.Optional(CapstanAsyncExtension),
}, { additionalProperties: false });
export type AsyncExchangeParams = Static<typeof AsyncExchangeParams>;

/** The reply body (reference 2.3): durations in nanoseconds, plus Capstan's `capstan.more`. */
export const AsyncReply = Type.Object({
  pingInterval: Type.Integer(),
  snapshotInterval: Type.Integer(),
  commandInterval: Type.Integer(),
  endpointID: Type.Integer(),
  commands: Type.Array(AgentCommand),
  needFullSnapshot: Type.Boolean(),
  capstan: Type.Object({ more: Type.Boolean() }),
}, { $id: 'EdgeAsyncReply' });
export type AsyncReply = Static<typeof AsyncReply>;

/** `polling.asyncExchange` result: the reply, or Portainer's `{message, details}` with a 4xx. */
export const AsyncExchangeResult = Type.Object({
  status: Type.Union([Type.Literal(200), Type.Literal(400), Type.Literal(403), Type.Literal(404)]),
  body: Type.Optional(AsyncReply),
  error: Type.Optional(Type.Object({ message: Type.String(), details: Type.String() })),
});
export type AsyncExchangeResult = Static<typeof AsyncExchangeResult>;

/** `snapshots.accept` params: what an async agent sent of its snapshot. */
export const AcceptSnapshotParams = Type.Object({
  id: Id,
  full: Type.Optional(Type.String({ maxLength: 900_000 })),
  patch: Type.Optional(Type.String({ maxLength: 900_000 })),
  hash: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
}, { additionalProperties: false });
export type AcceptSnapshotParams = Static<typeof AcceptSnapshotParams>;

type A<P, R> = { params: P; result: R };
declare module './actions' {
  interface ActionMap {
    /** One async exchange: authorises the agent, stores its snapshot, records acks, hands out commands. */
    'polling.asyncExchange': A<AsyncExchangeParams, AsyncExchangeResult>;
    /** Stores a pushed snapshot (full, or a patch on the stored one); `needFullSnapshot` when the patch does not apply. */
    'snapshots.accept': A<AcceptSnapshotParams, { needFullSnapshot: boolean }>;
  }
}
