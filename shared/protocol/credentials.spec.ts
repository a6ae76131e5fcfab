import crypto from 'node:crypto';
import { decryptCredentials, encryptCredentials, fromRawStd } from '.';

describe('tunnel credentials', () => {
  it('round-trips with the same Edge ID and uses a fresh nonce each time', () => {
    const a = encryptCredentials('AbCd1234:pAsS5678', 'agent-1');
    const b = encryptCredentials('AbCd1234:pAsS5678', 'agent-1');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[A-Za-z0-9+/]+$/);
    expect(decryptCredentials(a, 'agent-1')).toBe('AbCd1234:pAsS5678');
    // nonce (12) + ciphertext (17) + tag (16)
    expect(fromRawStd(a)).toHaveLength(12 + 17 + 16);
  });

  it('refuses a wrong Edge ID or tampered data', () => {
    const enc = encryptCredentials('user:pass', 'agent-1');
    expect(() => decryptCredentials(enc, 'agent-2')).toThrow(/wrong Edge ID/);
    const raw = fromRawStd(enc);
    raw[14] ^= 1;
    expect(() => decryptCredentials(raw.toString('base64'), 'agent-1')).toThrow();
    expect(() => decryptCredentials('!!', 'agent-1')).toThrow();
    expect(() => decryptCredentials('AAAA', 'agent-1')).toThrow(/too short/);
  });

  it('follows the wire format: AES-256-GCM, key = ASCII hex of MD5(EdgeID), nonce ‖ ct ‖ tag', () => {
    const edgeId = '7e2b0a4e-2f5c-4b53-9d36-0f7b8c2f1a11';
    const raw = fromRawStd(encryptCredentials('u:p', edgeId));
    const key = Buffer.from(crypto.createHash('md5').update(edgeId).digest('hex'), 'ascii');
    expect(key).toHaveLength(32);
    const d = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(raw.length - 16));
    expect(Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString()).toBe('u:p');
  });
});
