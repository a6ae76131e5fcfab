import pino, { type Logger, type LoggerOptions } from 'pino';

/** Paths pino must never print: credentials, tokens, keys (see ARCHITECTURE "Security"). */
export const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie',
  '*.password', '*.Password', '*.PasswordHash', '*.rawAPIKey', '*.jwt', '*.EdgeKey', '*.credentials', '*.secret',
];

/** Base pino options shared by fastify's logger and Moleculer's Pino logger. */
export function loggerOptions(level: string, base: Record<string, unknown> = {}): LoggerOptions {
  return {
    level,
    base: { ...base },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

/** A pino logger for code outside Moleculer and fastify (composition roots, scripts). */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino(loggerOptions(level, base));
}
export type { Logger };
