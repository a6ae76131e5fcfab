import { Type } from '@sinclair/typebox';
import { ErrorBody } from '../shared/contracts';

/** A 204 answer: no body. */
export const NoContent = Type.Null({ description: 'No content' });

/**
 * Error answers of a route for the OpenAPI document, all `{message, details}`. Every route may
 * answer 400 (bad input) and 503 (transient, retry); authenticated ones 401 and 403 too.
 */
export function errorResponses(codes: number[] = [], opts: { authenticated?: boolean } = {}): Record<number, typeof ErrorBody> {
  const all = new Set([400, 503, ...codes, ...(opts.authenticated === false ? [] : [401, 403])]);
  return Object.fromEntries([...all].sort((a, b) => a - b).map((code) => [code, ErrorBody]));
}
