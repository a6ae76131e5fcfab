import { Type, type TSchema } from '@sinclair/typebox';

/** A positive integer identifier (Portainer ids are ints starting at 1). */
export const Id = Type.Integer({ minimum: 1, maximum: 2147483647 });
export const IdParams = Type.Object({ id: Id });

/** The HTTP error body, Portainer's shape. */
export const ErrorBody = Type.Object({
  message: Type.String(),
  details: Type.Optional(Type.Any()),
}, { $id: 'ErrorBody' });

/** Policies keyed by user or team id: `{ "3": { "RoleId": 0 } }`. */
export const AccessPolicies = Type.Record(Type.String({ pattern: '^[0-9]+$' }), Type.Object({ RoleId: Type.Integer({ minimum: 0 }) }));

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
