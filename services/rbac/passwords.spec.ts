import { BadRequestError } from '../../shared/errors';
import {
  assertPasswordLength, DEFAULT_SCRYPT, dummyPasswordHash, hashPassword, parsePasswordHash, PasswordHashFormatError, verifyPassword,
} from './passwords';

// The lowest cost a stored hash may carry keeps most tests fast; one test covers the real cost.
const FAST = { N: 2 ** 10, r: 8, p: 1 };

describe('passwords', () => {
  it('hashes with the default cost into a self-describing string and verifies it', async () => {
    const encoded = await hashPassword('correct horse battery staple');
    expect(encoded).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/);
    const parsed = parsePasswordHash(encoded);
    expect(parsed).toMatchObject({ ...DEFAULT_SCRYPT });
    expect(parsed.salt).toHaveLength(16);
    expect(parsed.hash).toHaveLength(32);
    await expect(verifyPassword('correct horse battery staple', encoded)).resolves.toBe(true);
  });

  it('rejects a wrong password, including one differing in case or by a trailing space', async () => {
    const encoded = await hashPassword('Secret-password-1', FAST);
    await expect(verifyPassword('secret-password-1', encoded)).resolves.toBe(false);
    await expect(verifyPassword('Secret-password-1 ', encoded)).resolves.toBe(false);
    await expect(verifyPassword('', encoded)).resolves.toBe(false);
    await expect(verifyPassword('Secret-password-1', encoded)).resolves.toBe(true);
  });

  it('uses a fresh salt per hash, so equal passwords give different hashes', async () => {
    const [a, b] = await Promise.all([hashPassword('same password!', FAST), hashPassword('same password!', FAST)]);
    expect(a).not.toEqual(b);
    expect(parsePasswordHash(a).salt.equals(parsePasswordHash(b).salt)).toBe(false);
    await expect(verifyPassword('same password!', a)).resolves.toBe(true);
    await expect(verifyPassword('same password!', b)).resolves.toBe(true);
  });

  it('verifies with the parameters stored in the hash, not the current default', async () => {
    const encoded = await hashPassword('an older, cheaper hash', { N: 2 ** 11, r: 4, p: 2 });
    expect(encoded.startsWith('scrypt$2048$4$2$')).toBe(true);
    await expect(verifyPassword('an older, cheaper hash', encoded)).resolves.toBe(true);
  });

  it.each([
    ['empty', ''],
    ['bcrypt', '$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234'],
    ['too few fields', 'scrypt$32768$8$1$c2FsdA=='],
    ['unknown algorithm', 'argon2$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['N not a power of two', 'scrypt$30000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['N too large', `scrypt$${2 ** 24}$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`],
    ['r zero', 'scrypt$32768$0$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['p not a number', 'scrypt$32768$8$x$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['salt not base64', 'scrypt$32768$8$1$not*base64!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['salt too short', 'scrypt$32768$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['empty hash', 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$'],
  ])('rejects a malformed hash (%s)', async (_name, encoded) => {
    expect(() => parsePasswordHash(encoded)).toThrow(PasswordHashFormatError);
    await expect(verifyPassword('whatever password', encoded)).rejects.toThrow(PasswordHashFormatError);
  });

  it('keeps one dummy hash that matches no chosen password', async () => {
    const dummy = await dummyPasswordHash();
    expect(await dummyPasswordHash()).toBe(dummy);
    expect(parsePasswordHash(dummy)).toMatchObject({ ...DEFAULT_SCRYPT });
    await expect(verifyPassword('', dummy)).resolves.toBe(false);
  });

  it('enforces the required length in characters with a 400 naming the rule', () => {
    expect(() => assertPasswordLength('twelve chars', 12)).not.toThrow();
    // 12 code points, more UTF-16 units and bytes: counted as 12.
    expect(() => assertPasswordLength('pässwörd🔒🔒🔒🔒', 12)).not.toThrow();
    let caught: unknown;
    try {
      assertPasswordLength('eleven char', 12);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(BadRequestError);
    expect(caught).toMatchObject({ code: 400, data: { field: 'Password', requiredLength: 12 } });
  });
});
