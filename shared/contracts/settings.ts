import { Type, type Static } from '@sinclair/typebox';

const Duration = Type.String({ pattern: '^[0-9]+(ms|s|m|h)$', maxLength: 20 });
const Seconds = Type.Integer({ minimum: 0, maximum: 86400 });

/** Instance settings (Portainer's shape, the part Capstan honours). */
export const Settings = Type.Object({
  EdgeAgentCheckinInterval: Type.Integer({ minimum: 1, maximum: 86400 }),
  SnapshotInterval: Duration,
  UserSessionTimeout: Duration,
  TrustOnFirstConnect: Type.Boolean(),
  EnforceEdgeID: Type.Boolean(),
  EnableEdgeComputeFeatures: Type.Boolean(),
  RequiredPasswordLength: Type.Integer({ minimum: 1, maximum: 128 }),
  AuthenticationMethod: Type.Integer({ minimum: 1, maximum: 3 }),
  Edge: Type.Object({
    PingInterval: Seconds,
    SnapshotInterval: Seconds,
    CommandInterval: Seconds,
    AsyncMode: Type.Boolean(),
  }),
}, { $id: 'Settings' });
export type Settings = Static<typeof Settings>;

export const SettingsUpdate = Type.Partial(Type.Object({
  EdgeAgentCheckinInterval: Type.Integer({ minimum: 1, maximum: 86400 }),
  SnapshotInterval: Duration,
  UserSessionTimeout: Duration,
  TrustOnFirstConnect: Type.Boolean(),
  EnforceEdgeID: Type.Boolean(),
  EnableEdgeComputeFeatures: Type.Boolean(),
  RequiredPasswordLength: Type.Integer({ minimum: 1, maximum: 128 }),
  Edge: Type.Partial(Type.Object({
    PingInterval: Seconds,
    SnapshotInterval: Seconds,
    CommandInterval: Seconds,
    AsyncMode: Type.Boolean(),
  }), { additionalProperties: false }),
}), { additionalProperties: false, $id: 'SettingsUpdate' });
export type SettingsUpdate = Static<typeof SettingsUpdate>;

export const DEFAULT_SETTINGS: Settings = {
  EdgeAgentCheckinInterval: 5,
  SnapshotInterval: '5m',
  UserSessionTimeout: '8h',
  TrustOnFirstConnect: false,
  EnforceEdgeID: false,
  EnableEdgeComputeFeatures: false,
  RequiredPasswordLength: 12,
  AuthenticationMethod: 1,
  Edge: { PingInterval: 0, SnapshotInterval: 0, CommandInterval: 0, AsyncMode: false },
};

/** Parses `90s`, `5m`, `8h`, `250ms` into milliseconds. */
export function durationMs(d: string): number {
  const m = /^([0-9]+)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`invalid duration "${d}"`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60000 : n * 3600000;
}
