import type { ServiceBroker, Context, CallingOptions } from 'moleculer';
import type { Environment, EnvironmentCreate, EnvironmentPage, EnvironmentQuery, EnvironmentUpdate } from './environments';
import type { Group, GroupCreate, GroupUpdate, Tag, TagCreate } from './groups-tags';
import type { Settings, SettingsUpdate } from './settings';
import type { ApiKey, ApiKeyCreated, ApiKeyRecord, Credentials, Principal, Session, User, UserCreate, UserRecord } from './users';
import type { LeaderInfo, SystemStatus } from './system';
import type { BindEdgeIdParams, CheckinBatchParams, CheckinBatchResult, CheckinParams, CheckinResult, EdgeEnvironment, EdgeEnvironmentsParams, Heartbeat, RecordCheckinsParams, SetTunnelParams } from './edge';
import type {
  AckParams, AckResult, AckUntilTimestampParams, BatchCommandsParams, BatchCommandsResult, CommandBatch, CommandBatchRecord, CommandRecord, CommandsQueueParams,
  CommandsQueueResult, DeliveredParams, ListCommandsParams, PendingCommandsParams, PendingCommandsResult, PendingParams, PendingResult, QueueCommandsParams,
  QueueCommandsResult, UpdateCommandsParams, UpdateCommandsResult,
} from './commands';
import type { PushAliveResult, PushIdsParams, PushOpenParams, PushOpenResult } from './push';

type A<P, R> = { params: P; result: R };
type IdP = { id: number };

/**
 * Every action between services, by full name. `call()` below is typed by this map, so a
 * renamed action or a changed parameter breaks the build instead of a request at run time.
 */
export interface ActionMap {
  // state: the single writer. Reads and writes are both served by the leader.
  'state.leader': A<Record<string, never>, LeaderInfo>;
  'state.instance': A<Record<string, never>, SystemStatus>;
  'state.createEnvironment': A<EnvironmentCreate, Environment>;
  'state.getEnvironment': A<IdP, Environment>;
  'state.listEnvironments': A<EnvironmentQuery & { visibleToUserId?: number }, EnvironmentPage>;
  'state.updateEnvironment': A<{ id: number; patch: EnvironmentUpdate }, Environment>;
  'state.deleteEnvironment': A<IdP, { Id: number }>;
  'state.createGroup': A<GroupCreate, Group>;
  'state.getGroup': A<IdP, Group>;
  'state.listGroups': A<Record<string, never>, Group[]>;
  'state.updateGroup': A<{ id: number; patch: GroupUpdate }, Group>;
  'state.deleteGroup': A<IdP, { Id: number }>;
  'state.createTag': A<TagCreate, Tag>;
  'state.listTags': A<Record<string, never>, Tag[]>;
  'state.deleteTag': A<IdP, { ID: number }>;
  'state.getSettings': A<Record<string, never>, Settings>;
  'state.updateSettings': A<SettingsUpdate, Settings>;
  'state.adminExists': A<Record<string, never>, { exists: boolean }>;
  'state.initAdmin': A<{ Username: string; PasswordHash: string }, UserRecord>;
  'state.createUser': A<{ Username: string; PasswordHash: string; Role: number }, UserRecord>;
  'state.getUser': A<IdP, UserRecord>;
  'state.findUserByName': A<{ username: string }, { user: UserRecord | null }>;
  'state.listUsers': A<Record<string, never>, UserRecord[]>;
  'state.deleteUser': A<IdP, { Id: number }>;
  'state.createApiKey': A<{ userId: number; description: string; digest: string; prefix: string }, ApiKeyRecord>;
  'state.listApiKeys': A<{ userId: number }, ApiKeyRecord[]>;
  'state.deleteApiKey': A<{ userId: number; id: number }, { id: number }>;
  'state.findApiKeyByDigest': A<{ digest: string }, { apiKey: ApiKeyRecord | null }>;
  'state.touchApiKey': A<{ id: number; lastUsed: number }, { ok: boolean }>;
  'state.createSession': A<Session, Session>;
  'state.getSession': A<{ jti: string }, { session: Session | null }>;
  'state.deleteSession': A<{ jti: string }, { ok: boolean }>;
  'state.getSecret': A<{ name: 'jwt' | 'tunnelPrivateKey' | 'agentPrivateKey' }, { value: string }>;
  'state.tunnelFingerprint': A<Record<string, never>, { fingerprint: string }>;
  'state.edgeEnvironments': A<EdgeEnvironmentsParams, EdgeEnvironment[]>;
  'state.bindEdgeId': A<BindEdgeIdParams, { environment: EdgeEnvironment; written: boolean }>;
  'state.recordCheckins': A<RecordCheckinsParams, { updated: number }>;
  'state.clearAssociation': A<IdP, Environment>;
  // The command ledger (async Edge commands); read from the store, never cached in memory.
  'state.queueCommands': A<QueueCommandsParams, QueueCommandsResult>;
  'state.updateCommands': A<UpdateCommandsParams, UpdateCommandsResult>;
  'state.listCommands': A<ListCommandsParams, { items: CommandRecord[]; total: number }>;
  'state.getCommand': A<{ id: number; seq: number }, CommandRecord>;
  'state.pendingCommands': A<PendingCommandsParams, PendingCommandsResult>;
  'state.batchCommands': A<BatchCommandsParams, BatchCommandsResult>;
  'state.getCommandBatch': A<{ batchId: string }, CommandBatchRecord>;

  // rbac: sign-in, sessions, API keys, authorization decisions.
  'rbac.adminCheck': A<Record<string, never>, { exists: boolean }>;
  'rbac.adminInit': A<Credentials, User>;
  'rbac.login': A<Credentials & { clientAddress?: string }, { jwt: string }>;
  'rbac.logout': A<{ jti: string }, { ok: boolean }>;
  'rbac.authenticate': A<{ jwt?: string; apiKey?: string }, Principal>;
  'rbac.createUser': A<UserCreate, User>;
  'rbac.listUsers': A<Record<string, never>, User[]>;
  'rbac.getUser': A<IdP, User>;
  'rbac.deleteUser': A<IdP & { principal: Principal }, { Id: number }>;
  'rbac.createApiKey': A<{ principal: Principal; userId: number; description: string; password: string }, ApiKeyCreated>;
  'rbac.listApiKeys': A<{ principal: Principal; userId: number }, ApiKey[]>;
  'rbac.deleteApiKey': A<{ principal: Principal; userId: number; id: number }, { id: number }>;

  // polling: edge check-ins answered from memory.
  'polling.checkin': A<CheckinParams, CheckinResult>;
  /** Many check-ins in one call (a gateway whose polling is remote gathers them): one answer or carried error per item, in order. */
  'polling.checkinBatch': A<CheckinBatchParams, CheckinBatchResult>;
  'polling.setTunnel': A<SetTunnelParams, { ok: boolean }>;
  'polling.heartbeats': A<{ ids: number[] }, { items: Heartbeat[] }>;
  /** A push connection is being opened: admits the agent like a check-in; the current reply of a standard environment. */
  'polling.pushOpen': A<PushOpenParams, PushOpenResult>;
  /** The gateway's live push connections: their heartbeats; ids no longer admitted come back in `unknown`. */
  'polling.pushAlive': A<PushIdsParams, PushAliveResult>;
  /** Push connections that closed: their replies are no longer pushed. */
  'polling.pushClosed': A<PushIdsParams, { node: string }>;

  // commands: async commands to Edge agents, delivered in order through BullMQ.
  /** Persists (state) and enqueues; many environments go through the fan-out queue. */
  'commands.queue': A<CommandsQueueParams, CommandsQueueResult>;
  'commands.batch': A<{ batchId: string }, CommandBatch>;
  /** The environment's unfinished commands with seq > afterSeq, in seq order, at most `limit` (50). Throws 503 COMMANDS_UNAVAILABLE when Redis is unreachable. */
  'commands.pending': A<PendingParams, PendingResult>;
  /** Marks commands delivered (coalesced into one state call every ~50 ms; does not wait for it). */
  'commands.delivered': A<DeliveredParams, { ok: boolean }>;
  /** Persists results (batched), then removes the finished commands from the delivery queue. */
  'commands.ack': A<AckParams, AckResult>;
  /** Portainer agents' watermark: every delivered command with timestamp ≤ `timestamp` becomes succeeded. */
  'commands.ackUntilTimestamp': A<AckUntilTimestampParams, AckResult>;
  /** Re-adds every queued or delivered command to the delivery queues (idempotent); runs by itself at start and when Redis is back. */
  'commands.reconcile': A<Record<string, never>, { requeued: number }>;
}
export type ActionName = keyof ActionMap;

/** Type-checked `broker.call` / `ctx.call` keyed by the action map. */
export function call<K extends ActionName>(
  on: ServiceBroker | Context,
  action: K,
  params: ActionMap[K]['params'],
  opts?: CallingOptions,
): Promise<ActionMap[K]['result']> {
  return (on as ServiceBroker).call(action, params as object, opts) as Promise<ActionMap[K]['result']>;
}
