import { Type, type Static } from '@sinclair/typebox';
import { AccessPolicies, Id } from './common';

/** Portainer endpoint types (reference 4.6). */
export const EnvironmentType = {
  Docker: 1, AgentOnDocker: 2, Azure: 3, EdgeAgentOnDocker: 4, Kubernetes: 5, AgentOnKubernetes: 6, EdgeAgentOnKubernetes: 7,
} as const;
/** `EndpointCreationType` of `POST /api/endpoints`. */
export const CreationType = { DockerApi: 1, Agent: 2, Azure: 3, EdgeAgent: 4, LocalKubernetes: 5 } as const;
export const EnvironmentStatus = { Up: 1, Down: 2 } as const;

/** Edge agent environments (Docker or Kubernetes): the ones that check in. */
export const isEdgeType = (type: number): boolean => type === EnvironmentType.EdgeAgentOnDocker || type === EnvironmentType.EdgeAgentOnKubernetes;

/** Portainer's "online" rule (reference 1.15): a check-in within 2 × interval + 20 s of `nowS`. */
export const isOnline = (lastCheckInS: number, intervalS: number, nowS: number): boolean =>
  lastCheckInS > 0 && nowS - lastCheckInS <= 2 * intervalS + 20;

/** No control characters: names end up in logs, headers and UIs. */
const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const CheckinInterval = Type.Integer({ minimum: 0, maximum: 86400 });

/** Summary of the latest snapshot, safe for lists (no raw Docker payload). */
export const SnapshotSummary = Type.Object({
  Time: Type.Integer(),
  DockerVersion: Type.Optional(Type.String()),
  Swarm: Type.Optional(Type.Boolean()),
  TotalCPU: Type.Optional(Type.Number()),
  TotalMemory: Type.Optional(Type.Number()),
  NodeCount: Type.Optional(Type.Integer()),
  ContainerCount: Type.Optional(Type.Integer()),
  RunningContainerCount: Type.Optional(Type.Integer()),
  StoppedContainerCount: Type.Optional(Type.Integer()),
  HealthyContainerCount: Type.Optional(Type.Integer()),
  UnhealthyContainerCount: Type.Optional(Type.Integer()),
  VolumeCount: Type.Optional(Type.Integer()),
  ImageCount: Type.Optional(Type.Integer()),
  ServiceCount: Type.Optional(Type.Integer()),
  StackCount: Type.Optional(Type.Integer()),
}, { additionalProperties: true });
export type SnapshotSummary = Static<typeof SnapshotSummary>;

/** An environment (Portainer "endpoint") as the API returns it. */
export const Environment = Type.Object({
  Id,
  Name: Type.String(),
  Type: Type.Integer({ minimum: 1, maximum: 7 }),
  URL: Type.String(),
  PublicURL: Type.String(),
  GroupId: Id,
  TagIds: Type.Array(Id),
  Status: Type.Integer({ minimum: 1, maximum: 2 }),
  EdgeID: Type.String(),
  EdgeKey: Type.String(),
  EdgeCheckinInterval: CheckinInterval,
  UserTrusted: Type.Boolean(),
  LastCheckInDate: Type.Integer(),
  Heartbeat: Type.Boolean(),
  ContainerEngine: Type.String(),
  Agent: Type.Object({ Version: Type.String() }),
  Edge: Type.Object({
    AsyncMode: Type.Boolean(),
    PingInterval: Type.Integer(),
    SnapshotInterval: Type.Integer(),
    CommandInterval: Type.Integer(),
  }),
  UserAccessPolicies: AccessPolicies,
  TeamAccessPolicies: AccessPolicies,
  Snapshots: Type.Array(SnapshotSummary),
  CreationDate: Type.Integer(),
}, { $id: 'Environment' });
export type Environment = Static<typeof Environment>;

/** An async environment's own timers, seconds (Portainer BE's field names; 0: the settings'). */
const AsyncTimerFields = {
  EdgePingInterval: Type.Optional(CheckinInterval),
  EdgeSnapshotInterval: Type.Optional(CheckinInterval),
  EdgeCommandInterval: Type.Optional(CheckinInterval),
};

/** `POST /api/endpoints` body (JSON, or the same fields as multipart form values). */
export const EnvironmentCreate = Type.Object({
  Name,
  EndpointCreationType: Type.Integer({ minimum: 1, maximum: 5 }),
  URL: Type.Optional(Type.String({ maxLength: 2048 })),
  PublicURL: Type.Optional(Type.String({ maxLength: 2048 })),
  GroupID: Type.Optional(Id),
  TagIds: Type.Optional(Type.Array(Id, { maxItems: 1000 })),
  EdgeCheckinInterval: Type.Optional(CheckinInterval),
  ContainerEngine: Type.Optional(Type.Union([Type.Literal('docker'), Type.Literal('podman')])),
  EdgeAsync: Type.Optional(Type.Boolean()),
  ...AsyncTimerFields,
}, { additionalProperties: false, $id: 'EnvironmentCreate' });
export type EnvironmentCreate = Static<typeof EnvironmentCreate>;

/** `PUT /api/endpoints/{id}` body: every field optional. */
export const EnvironmentUpdate = Type.Object({
  Name: Type.Optional(Name),
  URL: Type.Optional(Type.String({ maxLength: 2048 })),
  PublicURL: Type.Optional(Type.String({ maxLength: 2048 })),
  GroupID: Type.Optional(Id),
  /** Portainer's update payload name (its Go decoder matches any case); `TagIds` is accepted too. */
  TagIDs: Type.Optional(Type.Array(Id, { maxItems: 1000 })),
  TagIds: Type.Optional(Type.Array(Id, { maxItems: 1000 })),
  Status: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 })),
  EdgeCheckinInterval: Type.Optional(CheckinInterval),
  ...AsyncTimerFields,
  UserAccessPolicies: Type.Optional(AccessPolicies),
  TeamAccessPolicies: Type.Optional(AccessPolicies),
}, { additionalProperties: false, $id: 'EnvironmentUpdate' });
export type EnvironmentUpdate = Static<typeof EnvironmentUpdate>;

const IdList = Type.String({ pattern: '^\\s*(\\[\\s*)?[0-9]+(\\s*,\\s*[0-9]+)*(\\s*\\])?\\s*$', maxLength: 10000 });

/** `GET /api/endpoints` query. Lists never carry raw snapshots. */
export const EnvironmentQuery = Type.Object({
  start: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  search: Type.Optional(Type.String({ maxLength: 200 })),
  sort: Type.Optional(Type.Union(['Name', 'Group', 'Status', 'LastCheckIn', 'EdgeID', 'Id'].map((s) => Type.Literal(s)))),
  order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
  groupIds: Type.Optional(IdList),
  tagIds: Type.Optional(IdList),
  types: Type.Optional(IdList),
  endpointIds: Type.Optional(IdList),
  status: Type.Optional(IdList),
  edgeAsync: Type.Optional(Type.Boolean()),
}, { additionalProperties: false, $id: 'EnvironmentQuery' });
export type EnvironmentQuery = Static<typeof EnvironmentQuery>;

/**
 * `state.listEnvironments` params: the HTTP query plus, for standard users, whose view to list
 * (environments with a policy for that user on themselves or their group; Portainer CE's rule).
 */
export const EnvironmentListParams = Type.Object({
  ...EnvironmentQuery.properties,
  visibleToUserId: Type.Optional(Id),
}, { additionalProperties: false });

export const EnvironmentPage = Type.Object({
  items: Type.Array(Environment),
  total: Type.Integer(),
  totalAvailable: Type.Integer(),
});
export type EnvironmentPage = Static<typeof EnvironmentPage>;

/** Parses `1,2,3` or `[1,2,3]` query values into ids. */
export function parseIdList(v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  return v.replace(/[[\]\s]/g, '').split(',').filter(Boolean).map(Number);
}
