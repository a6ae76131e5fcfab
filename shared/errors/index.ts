import { Errors } from 'moleculer';

/**
 * Capstan's error family. Every error that may reach a client carries an HTTP status in `code`,
 * a SCREAMING_SNAKE `type`, and `data` that becomes the `details` of the HTTP body.
 * Client errors (4xx) are never retried; transient ones (503) are marked retryable so callers
 * and the gateway can tell "try again" apart from "this will never work".
 */
export class AppError extends Errors.MoleculerError {
  constructor(message: string, code: number, type: string, data?: unknown, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, code, type, data);
    this.name = new.target.name;
    this.retryable = options?.retryable ?? false;
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

export class BadRequestError extends AppError {
  constructor(message: string, data?: unknown, options?: { cause?: unknown }) {
    super(message, 400, 'BAD_REQUEST', data, options);
  }
}
export class UnauthorizedError extends AppError {
  constructor(message = 'Unauthorized', data?: unknown) {
    super(message, 401, 'UNAUTHORIZED', data);
  }
}
export class ForbiddenError extends AppError {
  constructor(message = 'Access denied', data?: unknown) {
    super(message, 403, 'FORBIDDEN', data);
  }
}
export class NotFoundError extends AppError {
  constructor(message: string, data?: unknown) {
    super(message, 404, 'NOT_FOUND', data);
  }
}
export class ConflictError extends AppError {
  constructor(message: string, data?: unknown) {
    super(message, 409, 'CONFLICT', data);
  }
}
export class TooManyRequestsError extends AppError {
  constructor(message: string, data?: unknown) {
    super(message, 429, 'TOO_MANY_REQUESTS', data);
  }
}
/** No leader is known (election in progress): the write was not applied; retry shortly. */
export class LeaderUnavailableError extends AppError {
  constructor(message = 'No state leader is available; retry shortly', data?: unknown, options?: { cause?: unknown }) {
    super(message, 503, 'LEADER_UNAVAILABLE', data, { ...options, retryable: true });
  }
}
/** The store's fencing token moved on: this process is no longer the leader. Nothing was written. */
export class FencedError extends AppError {
  constructor(message = 'This state replica lost its leadership; the write was not applied', data?: unknown) {
    super(message, 503, 'FENCED', data, { retryable: true });
  }
}
/** The store was written by a newer Capstan schema than this build understands. */
export class StoreVersionError extends AppError {
  constructor(message: string, data?: unknown) {
    super(message, 500, 'STORE_VERSION_UNSUPPORTED', data);
  }
}

const classes: Record<string, new (...args: any[]) => AppError> = {
  BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, ConflictError,
  TooManyRequestsError, LeaderUnavailableError, FencedError, StoreVersionError,
};

/**
 * Restores Capstan's error classes when an error crosses the transporter, so `instanceof`
 * checks and the `retryable` flag behave the same in-process and over NATS.
 */
export class CapstanErrorRegenerator extends Errors.Regenerator {
  override restoreCustomError(plain: Errors.PlainMoleculerError, _payload: Record<string, any>): Error {
    const Cls = classes[plain.name];
    if (!Cls) return undefined as unknown as Error;
    const err = Object.create(Cls.prototype) as AppError;
    Object.assign(err, { name: plain.name, message: plain.message, code: plain.code, type: plain.type, data: plain.data, retryable: plain.retryable });
    return err;
  }
}

/** True when the error is transient and the same call may succeed later. */
export function isRetryable(err: unknown): boolean {
  return !!(err && typeof err === 'object' && (err as { retryable?: boolean }).retryable);
}
