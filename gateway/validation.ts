import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';

/** At most this many problems are reported for one request part. */
const MAX_PROBLEMS = 10;

/** One validation problem, as it appears in `details` of a 400. */
export interface Problem {
  path: string;
  message: string;
}

/**
 * Checks a value against a compiled TypeBox schema. Properties the schema does not know are
 * dropped first (Portainer's Go decoder ignores unknown JSON fields, and its clients send some),
 * then types are checked strictly.
 */
export function checkStrict<T extends TSchema>(schema: T, check: TypeCheck<T>, value: unknown): { value: unknown } | { problems: Problem[] } {
  const cleaned = value !== null && typeof value === 'object' ? Value.Clean(schema, Value.Clone(value)) : value;
  if (check.Check(cleaned)) return { value: cleaned };
  const problems: Problem[] = [];
  for (const e of check.Errors(cleaned)) {
    problems.push({ path: e.path || '/', message: e.message });
    if (problems.length >= MAX_PROBLEMS) break;
  }
  return { problems };
}

type JsonSchema = { type?: unknown; anyOf?: JsonSchema[]; properties?: Record<string, JsonSchema> };

/**
 * A query or path string as the type its schema wants, strictly: `12` is an integer but `1.5`,
 * `1e3`, `0x10`, ` 1` and `true` are not (TypeBox's Value.Convert would make all of them 1 or
 * 16, turning `/endpoints/1.5` into environment 1). Anything else is left for the check to reject.
 */
function convertScalar(schema: JsonSchema | undefined, raw: unknown): unknown {
  if (typeof raw !== 'string' || !schema) return raw;
  const types = schema.anyOf ? schema.anyOf.map((s) => s.type) : [schema.type];
  if (types.includes('integer') && /^-?[0-9]{1,16}$/.test(raw)) return Number(raw);
  if (types.includes('number') && /^-?[0-9]{1,16}(\.[0-9]{1,16})?$/.test(raw)) return Number(raw);
  if (types.includes('boolean') && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}

/** Converts each top-level property of params, querystring or headers (they are flat string maps). */
export function convertStrings(schema: TSchema, value: unknown): unknown {
  const props = (schema as JsonSchema).properties;
  if (!props || !value || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, sub] of Object.entries(props)) if (Object.prototype.hasOwnProperty.call(out, key)) out[key] = convertScalar(sub, out[key]);
  return out;
}

/**
 * Fastify validator compiler for TypeBox route schemas, so routes are validated by the same
 * compiler as Moleculer action params (shared/moleculer/validator.ts).
 *
 * - body: no type coercion ("4" is not 4 in JSON), unknown properties dropped;
 * - params, querystring, headers: decimal strings converted strictly to the schema's types
 *   (`/endpoints/12`; see convertStrings), unknown query parameters dropped (clients add their
 *   own, e.g. `x-api-key`, or Portainer filters Capstan does not implement);
 * - multipart bodies are parsed and validated by their route handler, which owns the stream.
 */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart, contentType }) => {
  if (httpPart === 'body' && contentType === 'multipart/form-data') return (value: unknown) => ({ value });
  const check = TypeCompiler.Compile(schema);
  const convert = httpPart !== 'body';
  return (value: unknown) => {
    let result: ReturnType<typeof checkStrict>;
    try {
      result = checkStrict(schema, check, convert ? convertStrings(schema, value) : value);
    } catch {
      // A validator that throws becomes a 500 in fastify; input that breaks conversion is bad input.
      result = { problems: [{ path: '/', message: 'Unreadable value' }] };
    }
    if ('value' in result) return { value: result.value };
    return { error: result.problems.map((p) => ({ instancePath: p.path, message: p.message, keyword: 'typebox', schemaPath: '', params: {} })) };
  };
};
