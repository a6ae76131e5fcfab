import { Type, type Static } from '@sinclair/typebox';
import { AccessPolicies, Id } from './common';

/** No control characters: names end up in logs, headers and UIs. */
const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

/** Environment group; group 1 "Unassigned" always exists and cannot be deleted. */
export const Group = Type.Object({
  Id,
  Name: Type.String(),
  Description: Type.String(),
  TagIds: Type.Array(Id),
  UserAccessPolicies: AccessPolicies,
  TeamAccessPolicies: AccessPolicies,
}, { $id: 'Group' });
export type Group = Static<typeof Group>;

export const GroupCreate = Type.Object({
  Name,
  Description: Type.Optional(Type.String({ maxLength: 2000 })),
  TagIDs: Type.Optional(Type.Array(Id, { maxItems: 1000 })),
  AssociatedEndpoints: Type.Optional(Type.Array(Id, { maxItems: 100000 })),
}, { additionalProperties: false, $id: 'GroupCreate' });
export type GroupCreate = Static<typeof GroupCreate>;

export const GroupUpdate = Type.Object({
  Name: Type.Optional(Name),
  Description: Type.Optional(Type.String({ maxLength: 2000 })),
  TagIDs: Type.Optional(Type.Array(Id, { maxItems: 1000 })),
  UserAccessPolicies: Type.Optional(AccessPolicies),
  TeamAccessPolicies: Type.Optional(AccessPolicies),
}, { additionalProperties: false, $id: 'GroupUpdate' });
export type GroupUpdate = Static<typeof GroupUpdate>;

/** A tag; `Endpoints` and `EndpointGroups` map ids to true, as Portainer returns them. */
export const Tag = Type.Object({
  ID: Id,
  Name: Type.String(),
  Endpoints: Type.Record(Type.String(), Type.Boolean()),
  EndpointGroups: Type.Record(Type.String(), Type.Boolean()),
}, { $id: 'Tag' });
export type Tag = Static<typeof Tag>;

export const TagCreate = Type.Object({ Name }, { additionalProperties: false, $id: 'TagCreate' });
export type TagCreate = Static<typeof TagCreate>;
