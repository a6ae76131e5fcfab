import { Type, type Static } from '@sinclair/typebox';
import { Id } from './common';

/*
 * Async commands to Edge agents: what an API client asks for (CommandSpec), what the state
 * service keeps (the ledger record), what an agent receives (AgentCommand, Portainer's wire
 * item plus seq and stopOnFailure), and the params of the state and commands actions.
 */

/** Lifecycle of a command; it only moves forward: queued → delivered → succeeded | failed. */
export const CommandStatus = Type.Union([Type.Literal('queued'), Type.Literal('delivered'), Type.Literal('succeeded'), Type.Literal('failed')]);
export type CommandStatus = Static<typeof CommandStatus>;
/** Rank of a status: an update to an equal or lower rank is ignored. */
export const STATUS_RANK: Record<CommandStatus, number> = { queued: 0, delivered: 1, succeeded: 2, failed: 2 };
export const isFinal = (s: CommandStatus): boolean => STATUS_RANK[s] === 2;

/** Portainer's command types (reference 2.6) Capstan queues, plus its own `dockerRequest`. */
export const CommandType = Type.Union([Type.Literal('container'), Type.Literal('image'), Type.Literal('volume'), Type.Literal('dockerRequest')]);
export type CommandType = Static<typeof CommandType>;

/** A Docker object name or id: no control characters. */
const ObjectName = Type.String({ minLength: 1, maxLength: 512, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
/** Longest `dockerRequest` path, and largest JSON body. */
export const MAX_DOCKER_PATH = 2048;
export const MAX_DOCKER_BODY_BYTES = 1024 * 1024;

export const ContainerCommandSpec = Type.Object({
  Type: Type.Literal('container'),
  ContainerName: ObjectName,
  ContainerOperation: Type.Union(['start', 'restart', 'stop', 'delete', 'kill'].map((o) => Type.Literal(o))),
  ContainerStartOptions: Type.Optional(Type.Object({ CheckpointID: Type.Optional(Type.String({ maxLength: 256 })), CheckpointDir: Type.Optional(Type.String({ maxLength: 1024 })) })),
  ContainerRemoveOptions: Type.Optional(Type.Object({ Force: Type.Optional(Type.Boolean()), RemoveVolumes: Type.Optional(Type.Boolean()) })),
}, { title: 'ContainerCommand' });
export const ImageCommandSpec = Type.Object({
  Type: Type.Literal('image'),
  ImageName: ObjectName,
  ImageOperation: Type.Literal('delete'),
  ImageRemoveOptions: Type.Optional(Type.Object({ Force: Type.Optional(Type.Boolean()), PruneChildren: Type.Optional(Type.Boolean()) })),
}, { title: 'ImageCommand' });
export const VolumeCommandSpec = Type.Object({
  Type: Type.Literal('volume'),
  VolumeName: ObjectName,
  VolumeOperation: Type.Literal('delete'),
  ForceRemove: Type.Optional(Type.Boolean()),
}, { title: 'VolumeCommand' });
export const DockerRequestSpec = Type.Object({
  Type: Type.Literal('dockerRequest'),
  Method: Type.Union(['GET', 'POST', 'PUT', 'DELETE', 'HEAD'].map((m) => Type.Literal(m))),
  Path: Type.String({
    minLength: 1, maxLength: MAX_DOCKER_PATH, pattern: '^/[^\\s?#\\u0000-\\u001f\\u007f]*$',
    description: 'Docker Engine API path, e.g. /containers/web/restart or /v1.41/images/prune; no ".." segment, no query (use Query)',
  }),
  Query: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.Union([Type.String({ maxLength: 8192 }), Type.Number(), Type.Boolean()]), { maxProperties: 100 })),
  Body: Type.Optional(Type.Unknown({ description: 'Any JSON value, at most 1 MiB encoded' })),
}, { title: 'DockerRequestCommand' });

/**
 * One command as an API client asks for it. Variants do not forbid extra properties: the gateway
 * drops unknown ones, and a union with closed variants would reject them instead.
 */
export const CommandSpec = Type.Union([ContainerCommandSpec, ImageCommandSpec, VolumeCommandSpec, DockerRequestSpec], { $id: 'CommandSpec' });
export type CommandSpec = Static<typeof CommandSpec>;

/** A command as the state service stores it (collection `commands`, key `<env>:<seq>` zero-padded). */
export const CommandRecord = Type.Object({
  EnvironmentId: Id,
  /** Per-environment sequence number, from 1, never reused. */
  Seq: Type.Integer({ minimum: 1 }),
  BatchId: Type.String(),
  /** Lower-case Portainer type (`container`, `image`, `volume`) or `dockerRequest`. */
  Type: CommandType,
  /** Portainer's value object (its field names), e.g. `{ContainerName, ContainerOperation, ...}`. */
  Value: Type.Unknown(),
  /** The agent skips this command when the one just before it on the environment did not succeed. */
  StopOnFailure: Type.Boolean(),
  Status: CommandStatus,
  /** The agent's error, when failed. */
  Error: Type.Optional(Type.String()),
  /** What the agent reported back (e.g. a dockerRequest's status and body), bounded in size. */
  Result: Type.Optional(Type.Unknown()),
  /** Unix seconds. */
  CreatedAt: Type.Integer(),
  DeliveredAt: Type.Optional(Type.Integer()),
  FinishedAt: Type.Optional(Type.Integer()),
  /** RFC 3339 with milliseconds, strictly increasing per environment: the agent's `timestamp` and Portainer's watermark. */
  Timestamp: Type.String(),
  /** User id of who queued it. */
  CreatedBy: Type.Integer({ minimum: 0 }),
});
export type CommandRecord = Static<typeof CommandRecord>;

/** A command as the API returns it: the record plus `Id` (`<EnvironmentId>:<Seq>`, unique across environments). */
export const Command = Type.Object({ Id: Type.String(), ...CommandRecord.properties }, { $id: 'Command' });
export type Command = Static<typeof Command>;

export const commandView = (r: CommandRecord): Command => ({ Id: `${r.EnvironmentId}:${r.Seq}`, ...r });

/**
 * One command on the wire to an agent (`commands` of the async reply): Portainer's item
 * (`id`, `type`, `endpointID`, `timestamp`, `op`, `path`, `value`) plus Capstan's `seq` and
 * `stopOnFailure`, which Portainer agents ignore.
 */
export const AgentCommand = Type.Object({
  id: Type.Integer({ description: 'The seq' }),
  seq: Type.Integer({ minimum: 1 }),
  type: CommandType,
  endpointID: Id,
  timestamp: Type.String(),
  op: Type.Literal(''),
  path: Type.Literal(''),
  value: Type.Unknown(),
  stopOnFailure: Type.Boolean(),
});
export type AgentCommand = Static<typeof AgentCommand>;

/** Counts of a batch's commands by status. */
export const CommandCounts = Type.Object({
  queued: Type.Integer(), delivered: Type.Integer(), succeeded: Type.Integer(), failed: Type.Integer(),
});
export type CommandCounts = Static<typeof CommandCounts>;

/** What state keeps of a batch (one API request): counters maintained with every status change. */
export const CommandBatchRecord = Type.Object({
  BatchId: Type.String(),
  CreatedAt: Type.Integer(),
  CreatedBy: Type.Integer({ minimum: 0 }),
  Environments: Type.Integer(),
  /** Commands per environment. */
  PerEnvironment: Type.Integer(),
  Total: Type.Integer(),
  Counts: CommandCounts,
});
export type CommandBatchRecord = Static<typeof CommandBatchRecord>;

/** `GET /api/commands/batches/{batchId}`: the counters, plus how many commands are in the delivery queues. */
export const CommandBatch = Type.Object({
  ...CommandBatchRecord.properties,
  /** Commands added to the environments' delivery queues (null: unknown, e.g. Redis unreachable or wiped since). */
  Enqueued: Type.Union([Type.Integer(), Type.Null()]),
}, { $id: 'CommandBatch' });
export type CommandBatch = Static<typeof CommandBatch>;

const BatchId = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', description: 'UUID' });
export const BatchIdParams = Type.Object({ batchId: BatchId });
/** Most commands one request may create (environments × commands). */
export const MAX_BATCH_COMMANDS = 20000;

/* ---- HTTP bodies ---- */

export const EnvironmentCommandsCreate = Type.Object({
  Commands: Type.Array(CommandSpec, { minItems: 1, maxItems: 1000 }),
  StopOnFailure: Type.Optional(Type.Boolean({ description: 'Every command is skipped by the agent if the command just before it on the environment did not succeed' })),
}, { $id: 'EnvironmentCommandsCreate' });
export type EnvironmentCommandsCreate = Static<typeof EnvironmentCommandsCreate>;

export const CommandsFanout = Type.Object({
  EnvironmentIds: Type.Array(Id, { minItems: 1, maxItems: MAX_BATCH_COMMANDS, uniqueItems: true }),
  Command: CommandSpec,
  StopOnFailure: Type.Optional(Type.Boolean()),
}, { $id: 'CommandsFanout' });
export type CommandsFanout = Static<typeof CommandsFanout>;

export const CommandQuery = Type.Object({
  status: Type.Optional(CommandStatus),
  start: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
}, { additionalProperties: false });
export type CommandQuery = Static<typeof CommandQuery>;

export const CommandSeqParams = Type.Object({ id: Id, seq: Type.Integer({ minimum: 1 }) });

/* ---- state actions ---- */

/** A command ready for the ledger: type and Portainer value (see toCommandValue). */
export const CommandInput = Type.Object({ type: CommandType, value: Type.Unknown() });
export type CommandInput = Static<typeof CommandInput>;

/** `state.queueCommands`: every command for every environment, in one commit, seqs in issue order. */
export const QueueCommandsParams = Type.Object({
  environmentIds: Type.Array(Id, { minItems: 1, maxItems: MAX_BATCH_COMMANDS }),
  commands: Type.Array(CommandInput, { minItems: 1, maxItems: 1000 }),
  stopOnFailure: Type.Boolean(),
  createdBy: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });
export type QueueCommandsParams = Static<typeof QueueCommandsParams>;
/** `commands` (the created records) only when there are at most 1000 of them. */
export type QueueCommandsResult = { batch: CommandBatchRecord; commands?: CommandRecord[] };

export const CommandUpdate = Type.Object({
  id: Id,
  seq: Type.Integer({ minimum: 1 }),
  status: Type.Union([Type.Literal('delivered'), Type.Literal('succeeded'), Type.Literal('failed')]),
  /** Unix seconds of the delivery or of the end. */
  at: Type.Integer({ minimum: 0 }),
  error: Type.Optional(Type.String({ maxLength: 4096 })),
  result: Type.Optional(Type.Unknown()),
}, { additionalProperties: false });
export type CommandUpdate = Static<typeof CommandUpdate>;

/**
 * Everything an agent acknowledged up to a point, without one ack per command: every
 * *delivered* command of the environment with Timestamp ≤ `timestamp` (Portainer's watermark)
 * or Seq ≤ `seq` becomes succeeded.
 */
export const CommandWatermark = Type.Object({
  id: Id,
  timestamp: Type.Optional(Type.String({ maxLength: 64 })),
  seq: Type.Optional(Type.Integer({ minimum: 0 })),
  at: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });
export type CommandWatermark = Static<typeof CommandWatermark>;

export const UpdateCommandsParams = Type.Object({
  updates: Type.Array(CommandUpdate, { maxItems: 5000 }),
  watermarks: Type.Optional(Type.Array(CommandWatermark, { maxItems: 1000 })),
}, { additionalProperties: false });
export type UpdateCommandsParams = Static<typeof UpdateCommandsParams>;
/** `final`: every command named by the call (or reached by a watermark) that is now finished, changed by it or not. */
export type UpdateCommandsResult = { updated: number; final: Array<{ id: number; seq: number }> };

export const ListCommandsParams = Type.Object({ id: Id, ...CommandQuery.properties }, { additionalProperties: false });
export type ListCommandsParams = Static<typeof ListCommandsParams>;

/** `state.pendingCommands`: queued and delivered commands of all environments, in key order, paged. */
export const PendingCommandsParams = Type.Object({
  afterKey: Type.Optional(Type.String({ maxLength: 64 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
}, { additionalProperties: false });
export type PendingCommandsParams = Static<typeof PendingCommandsParams>;
export type PendingCommandsResult = { commands: CommandRecord[]; nextKey: string | null };

/** `state.batchCommands`: a batch's commands from its `start`-th, for the fan-out worker. */
export const BatchCommandsParams = Type.Object({
  batchId: BatchId,
  start: Type.Integer({ minimum: 0 }),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
}, { additionalProperties: false });
export type BatchCommandsParams = Static<typeof BatchCommandsParams>;
/** `next`: where the following page starts (commands of a batch are never deleted, so normally start + commands.length). */
export type BatchCommandsResult = { commands: CommandRecord[]; total: number; next: number };

/* ---- commands actions ---- */

/** `commands.queue`: validated specs for one or many environments (many: through the fan-out queue). */
export const CommandsQueueParams = Type.Object({
  environmentIds: Type.Array(Id, { minItems: 1, maxItems: MAX_BATCH_COMMANDS }),
  commands: Type.Array(CommandSpec, { minItems: 1, maxItems: 1000 }),
  stopOnFailure: Type.Optional(Type.Boolean()),
  createdBy: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });
export type CommandsQueueParams = Static<typeof CommandsQueueParams>;

export const CommandsQueueResult = Type.Object({
  BatchId: Type.String(),
  Queued: Type.Integer(),
  /** True when Redis was unreachable: the commands are persisted and will be delivered once it is back. */
  Deferred: Type.Boolean(),
  /** The created commands, for a single environment. */
  Commands: Type.Optional(Type.Array(Type.Object({ Id: Type.String(), EnvironmentId: Id, Seq: Type.Integer(), Status: CommandStatus, Type: CommandType, Timestamp: Type.String() }))),
}, { $id: 'CommandsQueueResult' });
export type CommandsQueueResult = Static<typeof CommandsQueueResult>;

export const PendingParams = Type.Object({
  id: Id,
  afterSeq: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  /**
   * The caller runs commands strictly in seq order from `afterSeq` (Capstan's agent): hand out
   * only an unbroken run starting at `afterSeq + 1`, unless the ledger says the seqs in between
   * are finished. A command still on its way into the queue must never be overtaken.
   */
  contiguous: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type PendingParams = Static<typeof PendingParams>;
export type PendingResult = { commands: AgentCommand[]; more: boolean };

export const DeliveredParams = Type.Object({ id: Id, seqs: Type.Array(Type.Integer({ minimum: 1 }), { maxItems: 1000 }) }, { additionalProperties: false });
export type DeliveredParams = Static<typeof DeliveredParams>;

export const CommandAck = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  status: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')]),
  error: Type.Optional(Type.String({ maxLength: 65536 })),
  result: Type.Optional(Type.Unknown()),
  /** Unix seconds. */
  finishedAt: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type CommandAck = Static<typeof CommandAck>;

export const AckParams = Type.Object({
  id: Id,
  acks: Type.Array(CommandAck, { maxItems: 1000 }),
  /** The agent's cursor: it has processed every command up to this seq; delivered ones it did not ack become succeeded. */
  watermarkSeq: Type.Optional(Type.Integer({ minimum: 0 })),
}, { additionalProperties: false });
export type AckParams = Static<typeof AckParams>;

export const AckUntilTimestampParams = Type.Object({ id: Id, timestamp: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });
export type AckUntilTimestampParams = Static<typeof AckUntilTimestampParams>;
/** `finished`: the environment's seqs now finished and out of its delivery queue. */
export type AckResult = { finished: number[] };

/* ---- spec → Portainer value ---- */

/** Why a spec cannot be queued (beyond its schema), or null. */
export function specProblem(spec: CommandSpec): string | null {
  if (spec.Type !== 'dockerRequest') return null;
  // Percent-encoded dots count: the agent's HTTP client or the engine may decode them.
  if (spec.Path.split('/').some((seg) => seg === '.' || seg === '..' || ['.', '..'].includes(decodeSafe(seg)))) return 'Path must not contain "." or ".." segments';
  if (spec.Body !== undefined) {
    const size = Buffer.byteLength(JSON.stringify(spec.Body) ?? '');
    if (size > MAX_DOCKER_BODY_BYTES) return `Body is ${size} bytes encoded; at most ${MAX_DOCKER_BODY_BYTES}`;
  }
  return null;
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The ledger's `{type, value}` of a spec: Portainer's lower-case type and its value object (reference 2.6). */
export function toCommandInput(spec: CommandSpec): CommandInput {
  switch (spec.Type) {
    case 'container':
      return {
        type: 'container',
        value: {
          ContainerName: spec.ContainerName,
          ContainerOperation: spec.ContainerOperation,
          ContainerStartOptions: { CheckpointID: spec.ContainerStartOptions?.CheckpointID ?? '', CheckpointDir: spec.ContainerStartOptions?.CheckpointDir ?? '' },
          ContainerRemoveOptions: { RemoveVolumes: spec.ContainerRemoveOptions?.RemoveVolumes ?? false, RemoveLinks: false, Force: spec.ContainerRemoveOptions?.Force ?? false },
        },
      };
    case 'image':
      return {
        type: 'image',
        value: { ImageName: spec.ImageName, ImageOperation: 'delete', ImageRemoveOptions: { Force: spec.ImageRemoveOptions?.Force ?? false, PruneChildren: spec.ImageRemoveOptions?.PruneChildren ?? false } },
      };
    case 'volume':
      return { type: 'volume', value: { VolumeName: spec.VolumeName, ForceRemove: spec.ForceRemove ?? false, VolumeOperation: 'delete' } };
    case 'dockerRequest':
      return { type: 'dockerRequest', value: { Method: spec.Method, Path: spec.Path, Query: spec.Query ?? {}, ...(spec.Body !== undefined ? { Body: spec.Body } : {}) } };
  }
}
