import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { isRetryable } from '../../shared/errors';

/** What the client receives for a failed request: status, Portainer's body, extra headers. */
export interface HttpErrorReply {
  status: number;
  body: { message: string; details: unknown };
  headers?: Record<string, string>;
  /** Unexpected: log at error level with the full error. */
  internal: boolean;
}

type AnyError = Partial<Omit<FastifyError, 'code'>> & {
  name?: string;
  type?: unknown;
  data?: unknown;
  details?: unknown;
  code?: unknown;
};

/** Moleculer's transient failures: no (healthy) node could take the call. The client may retry. */
const RETRYABLE_NAMES = new Set(['RequestTimeoutError', 'ServiceNotAvailableError', 'ServiceNotFoundError', 'BrokerDisconnectedError', 'QueueIsFullError']);

/** Fastify's and its plugins' client errors that carry a fixed status. */
const FRAMEWORK_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'Request body is too large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Unsupported media type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'Invalid request body: empty JSON body',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Invalid Content-Length',
  FST_ERR_CTP_INVALID_JSON_BODY: 'Invalid JSON body',
  FST_REQ_FILE_TOO_LARGE: 'Uploaded file is too large',
  FST_PARTS_LIMIT: 'Too many multipart parts',
  FST_FILES_LIMIT: 'Too many uploaded files',
  FST_FIELDS_LIMIT: 'Too many form fields',
  FST_PROTO_VIOLATION: 'Invalid form field name',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'Request is not multipart',
  FST_ERR_BAD_URL: 'Malformed URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URL path parameter is too long',
};

/** Validation problems without the rejected values: they may be passwords or keys. */
function scrubProblems(data: unknown): unknown {
  if (!Array.isArray(data)) return data === undefined ? null : data;
  return data.slice(0, 20).map((p) => {
    if (!p || typeof p !== 'object') return p;
    const { field, message, instancePath, path } = p as Record<string, unknown>;
    return { path: field ?? instancePath ?? path ?? '/', message };
  });
}

/**
 * Maps any thrown value to what the client may see. Pure, so the mapping is unit-testable.
 * Order matters: transient broker errors carry 404/504 codes, Moleculer validation carries 422.
 */
export function toHttpError(raw: unknown, requestId: string): HttpErrorReply {
  const err: AnyError = raw && typeof raw === 'object' ? (raw as AnyError) : {};
  const internal = (): HttpErrorReply => ({ status: 500, body: { message: 'Internal server error', details: requestId }, internal: true });

  // Request schema validation (fastify).
  if (Array.isArray(err.validation)) {
    return {
      status: 400,
      body: {
        message: 'Invalid request',
        details: err.validation.slice(0, 20).map((v) => ({ location: err.validationContext ?? 'request', path: v.instancePath || '/', message: v.message })),
      },
      internal: false,
    };
  }
  if (err.name === 'ValidationError' && err.code === 422) {
    return { status: 400, body: { message: 'Invalid request', details: scrubProblems(err.data) }, internal: false };
  }
  if ((typeof err.name === 'string' && RETRYABLE_NAMES.has(err.name)) || isRetryable(raw)) {
    return {
      status: 503,
      body: { message: 'Service temporarily unavailable, please retry', details: typeof err.message === 'string' ? err.message : null },
      headers: { 'retry-after': '1' },
      internal: false,
    };
  }
  // Capstan's AppError family (and other Moleculer errors) carry the HTTP status in `code`.
  if (typeof err.code === 'number' && Number.isInteger(err.code) && err.code >= 400 && err.code <= 599 && typeof err.type === 'string') {
    if (err.code >= 500) return { ...internal(), status: err.code };
    return { status: err.code, body: { message: String(err.message ?? 'Request failed'), details: err.data === undefined ? null : err.data }, internal: false };
  }
  // Fastify and plugin errors, JSON syntax errors, rate limiting: statusCode set, message safe.
  const status = err.statusCode;
  if (typeof status === 'number' && status >= 400 && status <= 499) {
    const known = typeof err.code === 'string' ? FRAMEWORK_MESSAGES[err.code] : undefined;
    const message = known ?? (err instanceof SyntaxError ? 'Invalid JSON body' : String(err.message || 'Bad request'));
    const details = err.details ?? (known ? String(err.message ?? '') : null);
    return { status, body: { message, details }, internal: false };
  }
  return internal();
}

/** Sends an error in Portainer's shape; 5xx details stay in the log, keyed by the request id. */
export function sendError(request: FastifyRequest, reply: FastifyReply, raw: unknown): FastifyReply {
  const out = toHttpError(raw, String(request.id));
  if (out.internal) request.log.error({ err: raw }, 'request failed');
  else if (out.status === 503) request.log.warn({ err: raw }, 'service unavailable');
  else request.log.info({ status: out.status, message: out.body.message }, 'request rejected');
  if (out.headers) reply.headers(out.headers);
  return reply.code(out.status).type('application/json; charset=utf-8').send(out.body);
}

/**
 * One central error handler and the 404 handler: every failure leaves as `{message, details}`
 * with the right status, and nothing internal ever reaches the client.
 */
export default fp(async (fastify) => {
  fastify.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  fastify.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ message: 'Not found', details: `No route for ${request.method} ${request.url.split('?')[0].slice(0, 200)}` });
  });
}, { name: 'capstan-errors', fastify: '5.x' });
