import { Type, type Static } from '@sinclair/typebox';

/** `GET /api/system/status` (public). */
export const SystemStatus = Type.Object({ Version: Type.String(), InstanceID: Type.String() }, { $id: 'SystemStatus' });
export type SystemStatus = Static<typeof SystemStatus>;

/** Leadership of the state service, for operators and tests. */
export const LeaderInfo = Type.Object({
  nodeID: Type.String(),
  isLeader: Type.Boolean(),
  leaderNodeID: Type.Union([Type.String(), Type.Null()]),
  fence: Type.Integer(),
});
export type LeaderInfo = Static<typeof LeaderInfo>;

export const CAPSTAN_VERSION = '0.1.0';
