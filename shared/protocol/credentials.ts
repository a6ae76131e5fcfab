import crypto from 'node:crypto';

/*
 * Tunnel credentials as the server sends them in a poll reply (reference 1.10, Portainer's
 * `libcrypto.Encrypt`): AES-256-GCM whose 32-byte key is the ASCII hex string of MD5(Edge ID),
 * a random 12-byte nonce, output `nonce ‖ ciphertext ‖ 16-byte tag`, base64 without padding.
 */

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The AES-256 key of an Edge ID: the 32 ASCII bytes of its MD5 in lowercase hex. */
function keyOf(edgeId: string): Buffer {
  return Buffer.from(crypto.createHash('md5').update(edgeId, 'utf8').digest('hex'), 'ascii');
}

/** Unpadded standard base64 (Go's `base64.RawStdEncoding`). */
export function toRawStd(b: Buffer | Uint8Array): string {
  return Buffer.from(b).toString('base64').replace(/=+$/, '');
}

/** Decodes standard base64 with or without padding; throws on any other character. */
export function fromRawStd(s: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1) throw new Error('invalid base64');
  return Buffer.from(s, 'base64');
}

/** Encrypts `plain` (e.g. `user:pass`) for the agent whose Edge ID is `edgeId`. */
export function encryptCredentials(plain: string, edgeId: string): string {
  const nonce = crypto.randomBytes(NONCE_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyOf(edgeId), nonce);
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return toRawStd(Buffer.concat([nonce, ct, cipher.getAuthTag()]));
}

/**
 * Decrypts what {@link encryptCredentials} produced. Throws when the Edge ID is not the one it
 * was encrypted for (GCM authentication fails) or the input is malformed.
 */
export function decryptCredentials(b64: string, edgeId: string): string {
  const raw = fromRawStd(b64);
  if (raw.length < NONCE_BYTES + TAG_BYTES) throw new Error('encrypted credentials are too short');
  const nonce = raw.subarray(0, NONCE_BYTES);
  const tag = raw.subarray(raw.length - TAG_BYTES);
  const decipher = crypto.createDecipheriv('aes-256-gcm', keyOf(edgeId), nonce);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new Error('unable to decrypt the credentials: wrong Edge ID or corrupted data', { cause: err });
  }
}
