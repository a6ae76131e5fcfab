import { Type, type Static } from '@sinclair/typebox';
import { Id } from './common';
import { EdgeStatus } from './edge';

/*
 * The push channel, Capstan's own extension of the Edge protocol (README "Push channel"): one
 * outbound WebSocket from a Capstan agent to the gateway, over which the server pushes what the
 * agent would otherwise learn by polling. Negotiated through a response header that Portainer
 * agents ignore, so they are unaffected.
 */

/** Response header of check-ins and async exchanges when the server offers push; its value is the path. */
export const PUSH_HEADER = 'X-Capstan-Push';
/** WebSocket subprotocol of the push channel. */
export const PUSH_SUBPROTOCOL = 'capstan-push.v1';
/** The push path of an environment (relative to the API URL in the Edge key). */
export const pushPath = (id: number): string => `/api/endpoints/${id}/edge/push`;
/** The gateway pings every push socket this often and drops one that did not answer the previous ping. */
export const PUSH_PING_MS = 30_000;
/** How often a gateway reports its live push connections to polling (their heartbeats). */
export const PUSH_ALIVE_MS = 5_000;
/** Most ids in one `polling.pushAlive` / `polling.pushClosed` call or one `commands.queued` event. */
export const PUSH_IDS_PER_CALL = 5000;

/** Server → standard agent: the poll reply, exactly as `GET .../edge/status` would answer it now. */
export const PushStatusMessage = Type.Object({
  type: Type.Literal('status'),
  /** The ETag a check-in would carry for this body (a later poll may send it in If-None-Match). */
  etag: Type.String(),
  body: EdgeStatus,
});
export type PushStatusMessage = Static<typeof PushStatusMessage>;

/** Server → async agent: commands are queued; make the command exchange now. */
export const PushCommandsMessage = Type.Object({ type: Type.Literal('commands') });
/** Server → async agent: the timers changed; make an exchange now and take them from its reply. */
export const PushTimersMessage = Type.Object({ type: Type.Literal('timers') });

/** One JSON text frame from the server. Agents ignore types they do not know. */
export const PushMessage = Type.Union([PushStatusMessage, PushCommandsMessage, PushTimersMessage]);
export type PushMessage = Static<typeof PushMessage>;

/** `polling.pushOpen` params: the upgrade request's agent headers, verbatim (as a check-in's). */
export const PushOpenParams = Type.Object({
  id: Id,
  edgeId: Type.Optional(Type.String({ maxLength: 1024 })),
  agentVersion: Type.Optional(Type.String({ maxLength: 128 })),
  platform: Type.Optional(Type.String({ maxLength: 16 })),
}, { additionalProperties: false });
export type PushOpenParams = Static<typeof PushOpenParams>;

/**
 * `polling.pushOpen` result. 200: admitted like a check-in; `body`/`etag` are the current poll reply
 * of a standard environment (its first `status` message), absent for an async one. 4xx: refused,
 * with Portainer's `{message, details}`. `node` is the polling replica that now tracks the connection.
 */
export const PushOpenResult = Type.Object({
  status: Type.Union([Type.Literal(200), Type.Literal(400), Type.Literal(403), Type.Literal(404)]),
  node: Type.String(),
  async: Type.Optional(Type.Boolean()),
  etag: Type.Optional(Type.String()),
  body: Type.Optional(Type.String()),
  error: Type.Optional(Type.Object({ message: Type.String(), details: Type.String() })),
});
export type PushOpenResult = Static<typeof PushOpenResult>;

/** `polling.pushAlive` / `polling.pushClosed` params: environments with a live (or just closed) push connection. */
export const PushIdsParams = Type.Object({ ids: Type.Array(Id, { maxItems: PUSH_IDS_PER_CALL }) }, { additionalProperties: false });
export type PushIdsParams = Static<typeof PushIdsParams>;

/** `polling.pushAlive` result: ids polling no longer admits (environment gone or no longer Edge); their sockets are closed. */
export const PushAliveResult = Type.Object({ node: Type.String(), unknown: Type.Array(Id) });
export type PushAliveResult = Static<typeof PushAliveResult>;

/** Events of the push channel, by name. */
export const PushEvents = {
  /** Broadcast by polling to the gateway group: replies of pushed environments changed. */
  replyChanged: 'edgeReply.changed',
  /** Broadcast by the commands service to the gateway group: commands entered these environments' delivery queues. */
  commandsQueued: 'commands.queued',
} as const;

/**
 * One change for a pushed environment: `status` (standard: `etag` and `body`, the exact reply
 * JSON), `timers` (async: its timers changed), `revoked` (its agent is no longer admitted: the
 * association was cleared, another agent was bound, or the environment is gone).
 */
export const ReplyChange = Type.Object({
  id: Id,
  kind: Type.Union([Type.Literal('status'), Type.Literal('timers'), Type.Literal('revoked')]),
  etag: Type.Optional(Type.String()),
  body: Type.Optional(Type.String()),
});
export type ReplyChange = Static<typeof ReplyChange>;

/** `edgeReply.changed` payload. */
export const ReplyChanged = Type.Object({ items: Type.Array(ReplyChange) });
export type ReplyChanged = Static<typeof ReplyChanged>;

/** `commands.queued` payload. */
export const CommandsQueued = Type.Object({ ids: Type.Array(Id, { maxItems: PUSH_IDS_PER_CALL }) });
export type CommandsQueued = Static<typeof CommandsQueued>;
