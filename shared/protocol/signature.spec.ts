import crypto from 'node:crypto';
import { p256 } from '@noble/curves/nist';
import { fromRawStd, generateAgentSigningKey, signAgentRequest, verifyAgentRequest } from '.';

describe('agent request signatures', () => {
  const key = generateAgentSigningKey();

  it('signs MD5("Portainer-App") and verifies with the hex PKIX public key', () => {
    expect(key.privateKeyPem).toContain('BEGIN EC PRIVATE KEY');
    const a = signAgentRequest(key.privateKeyPem);
    const b = signAgentRequest(key.privateKeyPem);
    expect(a.signature).not.toBe(b.signature);
    expect(fromRawStd(a.signature)).toHaveLength(64);
    expect(a.signature).not.toContain('=');
    const der = crypto.createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' }).toString('hex');
    expect(a.publicKeyHex).toBe(der);
    expect(verifyAgentRequest(a.publicKeyHex, a.signature)).toBe(true);
    expect(verifyAgentRequest(a.publicKeyHex, b.signature)).toBe(true);
  });

  it('fails with another key, another message or malformed input', () => {
    const other = generateAgentSigningKey();
    const sig = signAgentRequest(key.privateKeyPem);
    const otherHex = signAgentRequest(other.privateKeyPem).publicKeyHex;
    expect(verifyAgentRequest(otherHex, sig.signature)).toBe(false);
    expect(verifyAgentRequest(sig.publicKeyHex, sig.signature, 'a-shared-secret')).toBe(false);
    const secret = signAgentRequest(key.privateKeyPem, 'a-shared-secret');
    expect(verifyAgentRequest(secret.publicKeyHex, secret.signature, 'a-shared-secret')).toBe(true);
    expect(verifyAgentRequest('zz', sig.signature)).toBe(false);
    expect(verifyAgentRequest(sig.publicKeyHex, sig.signature.slice(4))).toBe(false);
    expect(verifyAgentRequest(sig.publicKeyHex, '')).toBe(false);
    const ed = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
    expect(verifyAgentRequest(ed, sig.signature)).toBe(false);
    expect(() => signAgentRequest(crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string)).toThrow(/P-256/);
  });

  it('is plain ECDSA over the given digest (interoperates with OpenSSL when the digest is SHA-256)', () => {
    // Node hashes before signing; feeding noble the SHA-256 digest must give a signature OpenSSL accepts,
    // which shows noble signs the digest as is (as Go's ecdsa.Sign does with MD5's 16 bytes).
    const priv = crypto.createPrivateKey(key.privateKeyPem);
    const d = Buffer.from(priv.export({ format: 'jwk' }).d!, 'base64url');
    const msg = Buffer.from('Portainer-App');
    const sig = p256.sign(crypto.createHash('sha256').update(msg).digest(), d, { prehash: false, lowS: false }).toBytes('compact');
    expect(crypto.verify('sha256', msg, { key: crypto.createPublicKey(priv), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    // And a signature by OpenSSL over SHA-256 verifies through the raw-digest path.
    const ossl = crypto.sign('sha256', msg, { key: priv, dsaEncoding: 'ieee-p1363' });
    const pub = signAgentRequest(key.privateKeyPem).publicKeyHex;
    const point = crypto.createPublicKey({ key: Buffer.from(pub, 'hex'), format: 'der', type: 'spki' }).export({ format: 'jwk' });
    const raw = Buffer.concat([Buffer.from([4]), Buffer.from(point.x!, 'base64url'), Buffer.from(point.y!, 'base64url')]);
    expect(p256.verify(ossl, crypto.createHash('sha256').update(msg).digest(), raw, { prehash: false, lowS: false })).toBe(true);
  });
});
