import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { BadRequestError } from '../../shared/errors';

/** scrypt cost parameters, stored in every hash so they can be raised later without a migration. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelisation. */
  p: number;
}

/** The cost Capstan hashes new passwords with: N=2^15, r=8, p=1 (about 32 MiB and tens of ms). */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;

// Bounds on what a stored hash may ask for: a corrupt or hostile record must not be able to make
// verification allocate gigabytes or spin for minutes.
const MIN_LOG2_N = 10;
const MAX_LOG2_N = 20;
const MAX_R = 32;
const MAX_P = 16;
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A stored password hash that does not follow `scrypt$N$r$p$saltB64$hashB64`. */
export class PasswordHashFormatError extends Error {
  constructor(reason: string) {
    super(`Malformed password hash: ${reason}`);
    this.name = 'PasswordHashFormatError';
  }
}

/** The decoded parts of a stored hash. */
export interface ParsedPasswordHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

/** Decodes and bounds-checks `scrypt$N$r$p$saltB64$hashB64`; throws {@link PasswordHashFormatError}. */
export function parsePasswordHash(encoded: string): ParsedPasswordHash {
  const parts = encoded.split('$');
  if (parts.length !== 6) throw new PasswordHashFormatError('expected 6 "$"-separated fields');
  const [alg, nRaw, rRaw, pRaw, saltRaw, hashRaw] = parts as [string, string, string, string, string, string];
  if (alg !== 'scrypt') throw new PasswordHashFormatError(`unknown algorithm "${alg}"`);
  const [N, r, p] = [nRaw, rRaw, pRaw].map((s) => (/^[1-9][0-9]{0,9}$/.test(s) ? Number(s) : NaN)) as [number, number, number];
  const log2N = Math.log2(N);
  if (!Number.isInteger(log2N) || log2N < MIN_LOG2_N || log2N > MAX_LOG2_N) throw new PasswordHashFormatError('N must be a power of two between 2^10 and 2^20');
  if (!(r >= 1 && r <= MAX_R)) throw new PasswordHashFormatError(`r must be between 1 and ${MAX_R}`);
  if (!(p >= 1 && p <= MAX_P)) throw new PasswordHashFormatError(`p must be between 1 and ${MAX_P}`);
  if (!B64.test(saltRaw) || !B64.test(hashRaw)) throw new PasswordHashFormatError('salt and hash must be base64');
  const salt = Buffer.from(saltRaw, 'base64');
  const hash = Buffer.from(hashRaw, 'base64');
  if (salt.length < SALT_BYTES) throw new PasswordHashFormatError(`salt must be at least ${SALT_BYTES} bytes`);
  if (hash.length < 16 || hash.length > 64) throw new PasswordHashFormatError('hash must be 16 to 64 bytes');
  return { N, r, p, salt, hash };
}

function derive(password: string, salt: Buffer, keyLen: number, { N, r, p }: ScryptParams): Promise<Buffer> {
  // OpenSSL needs about 128*r*(N+p+2) bytes; Node's default ceiling (32 MiB) is just below what
  // N=2^15, r=8 takes, so the ceiling is raised with a margin of two.
  const maxmem = 256 * r * (N + p + 2);
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password with scrypt and a fresh 16-byte salt (runs on the libuv pool, never blocks). */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * True when `password` matches the stored hash, compared in constant time. Throws
 * {@link PasswordHashFormatError} when the stored value is not a valid hash.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parsePasswordHash(encoded);
  const key = await derive(password, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(key, parsed.hash);
}

let dummy: Promise<string> | undefined;

/**
 * A hash of a random password with the default cost. Sign-in verifies against it when the
 * username is unknown, so an unknown user takes as long to reject as a wrong password.
 */
export function dummyPasswordHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(32).toString('base64')).catch((err: unknown) => {
    dummy = undefined;
    throw err;
  });
  return dummy;
}

/**
 * Enforces the instance's minimum password length (settings `RequiredPasswordLength`), counted
 * in characters (Unicode code points). Throws a 400 with details naming the rule.
 */
export function assertPasswordLength(password: string, required: number): void {
  if ([...password].length < required) {
    throw new BadRequestError(`Password must be at least ${required} characters long`, {
      field: 'Password', rule: 'RequiredPasswordLength', requiredLength: required,
    });
  }
}
