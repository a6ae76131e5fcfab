import { Type, type Static } from '@sinclair/typebox';
import { Id } from './common';

/** Global roles (Portainer CE): 1 administrator, 2 standard user. */
export const Role = { Admin: 1, Standard: 2 } as const;

const Username = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\s/\\\\]+$' });
const Password = Type.String({ minLength: 1, maxLength: 1024 });

/** A user as the API returns it (never the password hash). */
export const User = Type.Object({
  Id,
  Username: Type.String(),
  Role: Type.Integer({ minimum: 1, maximum: 2 }),
  CreationDate: Type.Integer(),
}, { $id: 'User' });
export type User = Static<typeof User>;

/** A user as the state service stores it. */
export const UserRecord = Type.Intersect([User, Type.Object({ PasswordHash: Type.String() })]);
export type UserRecord = Static<typeof UserRecord>;

export const Credentials = Type.Object({ Username, Password }, { additionalProperties: false, $id: 'Credentials' });
export type Credentials = Static<typeof Credentials>;

export const UserCreate = Type.Object({
  Username,
  Password,
  Role: Type.Integer({ minimum: 1, maximum: 2 }),
}, { additionalProperties: false, $id: 'UserCreate' });
export type UserCreate = Static<typeof UserCreate>;

/** An API key as Portainer returns it; only the digest of the raw key is stored. */
export const ApiKey = Type.Object({
  id: Id,
  userId: Id,
  description: Type.String(),
  prefix: Type.String(),
  dateCreated: Type.Integer(),
  lastUsed: Type.Integer(),
}, { $id: 'ApiKey' });
export type ApiKey = Static<typeof ApiKey>;
export const ApiKeyRecord = Type.Intersect([ApiKey, Type.Object({ digest: Type.String() })]);
export type ApiKeyRecord = Static<typeof ApiKeyRecord>;

export const ApiKeyCreate = Type.Object({
  description: Type.String({ minLength: 1, maxLength: 128 }),
  password: Password,
}, { additionalProperties: false, $id: 'ApiKeyCreate' });
export type ApiKeyCreate = Static<typeof ApiKeyCreate>;

export const ApiKeyCreated = Type.Object({ rawAPIKey: Type.String(), apiKey: ApiKey }, { $id: 'ApiKeyCreated' });
export type ApiKeyCreated = Static<typeof ApiKeyCreated>;

/** A signed-in session: the JWT id, revoked by logout. */
export const Session = Type.Object({ jti: Type.String({ minLength: 16, maxLength: 64 }), userId: Id, exp: Type.Integer() });
export type Session = Static<typeof Session>;

/** Who is calling, as resolved by rbac.authenticate. */
export const Principal = Type.Object({
  userId: Id,
  username: Type.String(),
  role: Type.Integer({ minimum: 1, maximum: 2 }),
  method: Type.Union([Type.Literal('jwt'), Type.Literal('apikey')]),
  jti: Type.Optional(Type.String()),
  apiKeyId: Type.Optional(Id),
});
export type Principal = Static<typeof Principal>;
