import { Type, type Static } from '@sinclair/typebox';
import { AsyncIntervals } from './async';
import { Id } from './common';

/*
 * The Edge agent protocol (standard mode) as contracts: the poll reply agents receive, the
 * compact view of Edge environments the polling service keeps in memory, and the actions and
 * events between gateway, polling, state and tunnel.
 */

/** An edge job in a poll reply (Go `edgeJobResponse`). */
export const EdgeSchedule = Type.Object({
  Id,
  CollectLogs: Type.Boolean(),
  CronExpression: Type.String(),
  Script: Type.String({ description: 'Script bytes, base64 without padding' }),
  Version: Type.Integer(),
});
export type EdgeSchedule = Static<typeof EdgeSchedule>;

/** An edge stack in a poll reply (Go `stackStatusResponse`). */
export const EdgeStackRef = Type.Object({ ID: Id, Version: Type.Integer() });
export type EdgeStackRef = Static<typeof EdgeStackRef>;

/** Tunnel status in a poll reply ("ACTIVE" exists in Portainer but is never sent by CE). */
export const TunnelStatus = Type.Union([Type.Literal('IDLE'), Type.Literal('REQUIRED')]);
export type TunnelStatus = Static<typeof TunnelStatus>;

/** `GET /api/endpoints/{id}/edge/status` reply body (reference 1.8): lowercase keys, Go names inside. */
export const EdgeStatus = Type.Object({
  status: TunnelStatus,
  port: Type.Integer({ minimum: 0, maximum: 65535, description: 'Tunnel port on the server when REQUIRED' }),
  schedules: Type.Array(EdgeSchedule),
  checkin: Type.Integer({ minimum: 0, description: 'Effective poll interval, seconds' }),
  credentials: Type.String({ description: 'Tunnel credentials, AES-256-GCM under hex(md5(EdgeID)), base64 without padding' }),
  stacks: Type.Array(EdgeStackRef),
}, { $id: 'EdgeStatus' });
export type EdgeStatus = Static<typeof EdgeStatus>;

/** Orders views of one environment: a higher fence wins, then a higher sequence. */
export const Revision = Type.Object({ fence: Type.Integer({ minimum: 0 }), seq: Type.Integer({ minimum: 0 }) });
export type Revision = Static<typeof Revision>;

/** What polling keeps of an Edge environment (types 4 and 7). */
export const EdgeEnvironment = Type.Object({
  Id,
  EdgeID: Type.String(),
  Type: Type.Integer(),
  EdgeCheckinInterval: Type.Integer({ minimum: 0 }),
  AsyncMode: Type.Boolean(),
  /** The environment's own async timers, seconds (0: the settings'). */
  AsyncIntervals: AsyncIntervals,
  UserTrusted: Type.Boolean(),
  LastCheckInDate: Type.Integer(),
  AgentVersion: Type.String(),
  Rev: Revision,
});
export type EdgeEnvironment = Static<typeof EdgeEnvironment>;

const Text = (max: number) => Type.String({ maxLength: max });

/** `state.edgeEnvironments` params: the Edge environments of `ids`, or a page of all of them in id order. */
export const EdgeEnvironmentsParams = Type.Object({
  ids: Type.Optional(Type.Array(Id, { maxItems: 2000 })),
  /** Only environments with a greater id. */
  afterId: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
}, { additionalProperties: false });
export type EdgeEnvironmentsParams = Static<typeof EdgeEnvironmentsParams>;

/** `state.bindEdgeId` params: what a check-in tells about the agent. */
export const BindEdgeIdParams = Type.Object({
  id: Id,
  edgeId: Type.String({ minLength: 1, maxLength: 1024 }),
  agentVersion: Text(128),
  platform: Type.Union([Type.Literal(1), Type.Literal(2)]),
  /** The agent uses the async exchange: the environment becomes async. */
  async: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type BindEdgeIdParams = Static<typeof BindEdgeIdParams>;

/** `state.recordCheckins` params: last check-ins (unix seconds) flushed by polling. */
export const RecordCheckinsParams = Type.Object({
  items: Type.Array(Type.Object({ id: Id, at: Type.Integer({ minimum: 1 }) }), { maxItems: 20000 }),
}, { additionalProperties: false });
export type RecordCheckinsParams = Static<typeof RecordCheckinsParams>;

/** `polling.checkin` params: the request as the gateway read it (header values verbatim). */
export const CheckinParams = Type.Object({
  id: Id,
  edgeId: Type.Optional(Text(1024)),
  agentVersion: Type.Optional(Text(128)),
  platform: Type.Optional(Text(16)),
  ifNoneMatch: Type.Optional(Text(1024)),
}, { additionalProperties: false });
export type CheckinParams = Static<typeof CheckinParams>;

/**
 * `polling.checkin` result: what the gateway sends. `body` (200 only) is the exact JSON text the
 * ETag was computed over; `error` (4xx) is Portainer's `{message, details}`.
 */
export const CheckinResult = Type.Object({
  status: Type.Union([Type.Literal(200), Type.Literal(304), Type.Literal(400), Type.Literal(403), Type.Literal(404)]),
  etag: Type.Optional(Type.String()),
  body: Type.Optional(Type.String()),
  error: Type.Optional(Type.Object({ message: Type.String(), details: Type.String() })),
});
export type CheckinResult = Static<typeof CheckinResult>;

/** Most check-ins in one `polling.checkinBatch` call (a gateway gathers them for a millisecond or two). */
export const CHECKIN_BATCH_MAX = 512;

/** `polling.checkinBatch` params: check-ins one gateway received at about the same time. */
export const CheckinBatchParams = Type.Object({
  items: Type.Array(CheckinParams, { minItems: 1, maxItems: CHECKIN_BATCH_MAX }),
  /** Answer every item, however long it waits on state: none comes back `pending`. */
  wait: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type CheckinBatchParams = Static<typeof CheckinBatchParams>;

/**
 * An error as Moleculer carries one across the transporter (its regenerator's plain form), so the
 * gateway restores exactly the error a single `polling.checkin` call would have thrown.
 */
export const CarriedError = Type.Object({
  name: Type.String(),
  message: Type.String(),
  code: Type.Optional(Type.Integer()),
  type: Type.Optional(Type.String()),
  data: Type.Optional(Type.Unknown()),
  retryable: Type.Optional(Type.Boolean()),
  nodeID: Type.Optional(Type.String()),
  stack: Type.Optional(Type.String()),
});
export type CarriedError = Static<typeof CarriedError>;

/**
 * `polling.checkinBatch` result: one item per check-in, in order, each the answer a single
 * `polling.checkin` would have given, the error it would have thrown (`failed`), or `pending`
 * when it waits on state (a first binding): ask `node` again for those, with `wait`.
 */
export const CheckinBatchResult = Type.Object({
  node: Type.String({ description: 'The polling replica that answered' }),
  items: Type.Array(Type.Union([CheckinResult, Type.Object({ failed: CarriedError }), Type.Object({ pending: Type.Literal(true) })])),
});
export type CheckinBatchResult = Static<typeof CheckinBatchResult>;

/**
 * `polling.setTunnel` params (called by the tunnel service). `credentials` is the plaintext
 * `user:pass`; polling encrypts it for the bound Edge ID. `version`, when given, must grow with
 * each call for the environment: an older one is ignored (calls may reach replicas out of order).
 */
export const SetTunnelParams = Type.Object({
  id: Id,
  status: TunnelStatus,
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  credentials: Type.Optional(Text(256)),
  version: Type.Optional(Type.Integer({ minimum: 0 })),
}, { additionalProperties: false });
export type SetTunnelParams = Static<typeof SetTunnelParams>;

/** `polling.heartbeats` params and result: live last check-ins for lists. */
export const HeartbeatsParams = Type.Object({ ids: Type.Array(Id, { maxItems: 1000 }) }, { additionalProperties: false });
export const Heartbeat = Type.Object({
  id: Id,
  /** Last check-in seen, unix seconds (0: never). */
  lastCheckIn: Type.Integer(),
  /** Effective check-in interval, seconds. */
  checkinInterval: Type.Integer(),
});
export type Heartbeat = Static<typeof Heartbeat>;

/** Events about Edge environments, by name. */
export const EdgeEvents = {
  /** Broadcast by the state leader after a commit that changed an environment. */
  environmentChanged: 'environment.changed',
  /** Broadcast by the state leader after the settings changed. */
  settingsChanged: 'settings.changed',
  /** Broadcast by a polling replica to the others when the tunnel service changed a tunnel. */
  tunnelChanged: 'edgeTunnel.changed',
} as const;

/** `environment.changed`: `edge` is the new compact view, null when deleted or not an Edge environment. */
export const EnvironmentChanged = Type.Object({ id: Id, rev: Revision, edge: Type.Union([EdgeEnvironment, Type.Null()]) });
export type EnvironmentChanged = Static<typeof EnvironmentChanged>;

/** `settings.changed`: the settings edge check-ins depend on. */
export const SettingsChanged = Type.Object({
  EdgeAgentCheckinInterval: Type.Integer({ minimum: 1 }),
  TrustOnFirstConnect: Type.Boolean(),
  /** The settings' async timers, defaults resolved (seconds). */
  Async: AsyncIntervals,
});
export type SettingsChanged = Static<typeof SettingsChanged>;

/** `edgeTunnel.changed`: a tunnel as every polling replica must answer it (credentials already encrypted). */
export const TunnelChanged = Type.Object({
  id: Id,
  status: TunnelStatus,
  port: Type.Integer(),
  credentials: Type.String(),
  /** The Edge ID the credentials were encrypted for. */
  edgeId: Type.String(),
  version: Type.Optional(Type.Integer()),
});
export type TunnelChanged = Static<typeof TunnelChanged>;
