import type { TSchema } from '@sinclair/typebox';
import { Type } from '@sinclair/typebox';
import {
  BindEdgeIdParams, CAPSTAN_VERSION, EdgeEnvironmentsParams, EnvironmentCreate, EnvironmentListParams, EnvironmentUpdate, GroupCreate, GroupUpdate, Id, IdParams,
  PutSnapshotParams, RecordCheckinsParams, Session, SettingsUpdate, TagCreate, type ActionMap,
} from '../../../shared/contracts';
import {
  BatchCommandsParams, BatchIdParams, CommandSeqParams, ListCommandsParams, PendingCommandsParams, QueueCommandsParams, UpdateCommandsParams,
} from '../../../shared/contracts/commands';
import { NotFoundError } from '../../../shared/errors';
import type { Leading } from './context';
import * as commands from './commands';
import * as edge from './edge';
import * as env from './environments';
import * as gt from './groups-tags';
import { getSettings, updateSettings } from './settings';
import * as snapshots from './snapshots';
import * as users from './users';

type StateAction = Extract<keyof ActionMap, `state.${string}`>;
type Short<K> = K extends `state.${infer S}` ? S : never;

/** A leader-only action: its params schema and its handler over the leader's view. */
export interface LeaderAction<K extends StateAction = StateAction> {
  params: TSchema;
  run(l: Leading, p: ActionMap[K]['params']): ActionMap[K]['result'] | Promise<ActionMap[K]['result']>;
}

const Empty = Type.Object({});
const Str = (max = 200) => Type.String({ minLength: 1, maxLength: max });
const Patch = <T extends TSchema>(t: T) => Type.Object({ id: Id, patch: t });

/** Every state action except `leader` (answered by any replica). Typed against the action map. */
export const LEADER_ACTIONS: { [K in Exclude<StateAction, 'state.leader'> as Short<K>]: LeaderAction<K> } = {
  instance: {
    params: Empty,
    run: (l) => ({ Version: CAPSTAN_VERSION, InstanceID: l.repo.get<{ InstanceID: string }>('instance', 'instance')!.InstanceID }),
  },
  createEnvironment: { params: EnvironmentCreate, run: (l, p) => env.createEnvironment(l, p) },
  getEnvironment: { params: IdParams, run: (l, p) => env.getEnvironment(l, p.id) },
  listEnvironments: { params: EnvironmentListParams, run: (l, p) => env.listEnvironments(l, p) },
  updateEnvironment: { params: Patch(EnvironmentUpdate), run: (l, p) => env.updateEnvironment(l, p.id, p.patch) },
  deleteEnvironment: { params: IdParams, run: (l, p) => env.deleteEnvironment(l, p.id) },
  createGroup: { params: GroupCreate, run: (l, p) => gt.createGroup(l, p) },
  getGroup: { params: IdParams, run: (l, p) => gt.getGroup(l, p.id) },
  listGroups: { params: Empty, run: (l) => gt.listGroups(l) },
  updateGroup: { params: Patch(GroupUpdate), run: (l, p) => gt.updateGroup(l, p.id, p.patch) },
  deleteGroup: { params: IdParams, run: (l, p) => gt.deleteGroup(l, p.id) },
  createTag: { params: TagCreate, run: (l, p) => gt.createTag(l, p) },
  listTags: { params: Empty, run: (l) => gt.listTags(l) },
  deleteTag: { params: IdParams, run: (l, p) => gt.deleteTag(l, p.id) },
  getSettings: { params: Empty, run: (l) => getSettings(l) },
  updateSettings: { params: SettingsUpdate, run: (l, p) => updateSettings(l, p) },
  adminExists: { params: Empty, run: (l) => ({ exists: users.adminExists(l) }) },
  initAdmin: { params: Type.Object({ Username: Str(100), PasswordHash: Str(512) }), run: (l, p) => users.initAdmin(l, p) },
  createUser: {
    params: Type.Object({ Username: Str(100), PasswordHash: Str(512), Role: Type.Integer({ minimum: 1, maximum: 2 }) }),
    run: (l, p) => users.createUser(l, p),
  },
  getUser: { params: IdParams, run: (l, p) => users.getUser(l, p.id) },
  findUserByName: { params: Type.Object({ username: Str(100) }), run: (l, p) => ({ user: users.findUserByName(l, p.username) }) },
  listUsers: { params: Empty, run: (l) => users.listUsers(l) },
  deleteUser: { params: IdParams, run: (l, p) => users.deleteUser(l, p.id) },
  createApiKey: {
    params: Type.Object({ userId: Id, description: Str(128), digest: Str(128), prefix: Str(16) }),
    run: (l, p) => users.createApiKey(l, p),
  },
  listApiKeys: { params: Type.Object({ userId: Id }), run: (l, p) => users.listApiKeys(l, p.userId) },
  deleteApiKey: { params: Type.Object({ userId: Id, id: Id }), run: (l, p) => users.deleteApiKey(l, p.userId, p.id) },
  findApiKeyByDigest: { params: Type.Object({ digest: Str(128) }), run: (l, p) => ({ apiKey: users.findApiKeyByDigest(l, p.digest) }) },
  touchApiKey: { params: Type.Object({ id: Id, lastUsed: Type.Integer({ minimum: 0 }) }), run: (l, p) => users.touchApiKey(l, p.id, p.lastUsed) },
  createSession: { params: Session, run: (l, p) => users.createSession(l, p) },
  getSession: { params: Type.Object({ jti: Str(64) }), run: (l, p) => ({ session: users.getSession(l, p.jti) }) },
  deleteSession: { params: Type.Object({ jti: Str(64) }), run: (l, p) => users.deleteSession(l, p.jti) },
  getSecret: {
    params: Type.Object({ name: Type.Union([Type.Literal('jwt'), Type.Literal('tunnelPrivateKey'), Type.Literal('agentPrivateKey')]) }),
    run: (l, p) => {
      const s = l.repo.get<{ value: string }>('secrets', p.name);
      if (!s) throw new NotFoundError('Unknown secret', { name: p.name });
      return { value: s.value };
    },
  },
  tunnelFingerprint: { params: Empty, run: (l) => ({ fingerprint: l.fingerprint }) },
  edgeEnvironments: { params: EdgeEnvironmentsParams, run: (l, p) => edge.edgeEnvironments(l, p) },
  bindEdgeId: { params: BindEdgeIdParams, run: (l, p) => edge.bindEdgeId(l, p) },
  recordCheckins: { params: RecordCheckinsParams, run: (l, p) => edge.recordCheckins(l, p) },
  clearAssociation: { params: IdParams, run: (l, p) => edge.clearAssociation(l, p.id) },
  queueCommands: { params: QueueCommandsParams, run: (l, p) => commands.queueCommands(l, p) },
  updateCommands: { params: UpdateCommandsParams, run: (l, p) => commands.updateCommands(l, p) },
  listCommands: { params: ListCommandsParams, run: (l, p) => commands.listCommands(l, p) },
  getCommand: { params: CommandSeqParams, run: (l, p) => commands.getCommand(l, p.id, p.seq) },
  pendingCommands: { params: PendingCommandsParams, run: (l, p) => commands.pendingCommands(l, p) },
  batchCommands: { params: BatchCommandsParams, run: (l, p) => commands.batchCommands(l, p) },
  getCommandBatch: { params: BatchIdParams, run: (l, p) => commands.getCommandBatch(l, p.batchId) },
  putSnapshot: { params: PutSnapshotParams, run: (l, p) => snapshots.putSnapshot(l, p) },
  getSnapshot: { params: IdParams, run: (l, p) => snapshots.getSnapshot(l, p.id) },
};
