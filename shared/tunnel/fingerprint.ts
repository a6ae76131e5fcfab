import crypto from 'node:crypto';

/** Error message an agent reports when the tunnel server's key is not the pinned one. */
export const FINGERPRINT_MISMATCH = 'tunnel server fingerprint mismatch';

// What Go's base64.StdEncoding accepts: whole quads, `=` padding only at the end.
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const LEGACY_MD5 = /^[0-9a-f]{2}(?::[0-9a-f]{2}){15}$/i;

/**
 * chisel's fingerprint of an SSH host key: SHA-256 over the key in SSH wire format (the blob a
 * server sends in its key exchange), standard base64 with padding: 44 characters ending in `=`.
 */
export function fingerprintOf(keyBlob: Buffer): string {
  return crypto.createHash('sha256').update(keyBlob).digest('base64');
}

/** The fingerprint chisel used before 1.7: MD5 of the same blob as colon-separated hex. */
export function legacyFingerprintOf(keyBlob: Buffer): string {
  return crypto.createHash('md5').update(keyBlob).digest('hex').match(/../g)!.join(':');
}

/**
 * Whether a pinned fingerprint names this host key. As in chisel's client, a value that is not
 * valid standard base64 is taken as the legacy MD5 form. Stricter than chisel in two ways: an empty
 * pin never matches (chisel skips the check), and a legacy pin must be the whole MD5 value rather
 * than any prefix of it, since a short prefix would pin almost nothing.
 */
export function fingerprintMatches(pinned: string, keyBlob: Buffer): boolean {
  const expected = pinned.trim();
  if (expected === '') return false;
  if (!STD_BASE64.test(expected)) {
    return LEGACY_MD5.test(expected) && safeEqual(expected.toLowerCase(), legacyFingerprintOf(keyBlob));
  }
  return safeEqual(expected, fingerprintOf(keyBlob));
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}
