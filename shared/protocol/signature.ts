import crypto from 'node:crypto';
import { p256 } from '@noble/curves/nist';
import { fromRawStd, toRawStd } from './credentials';

/*
 * The signature the server puts on every request to an agent's API (reference 3.3): ECDSA P-256
 * over MD5("Portainer-App") — the 16-byte digest is signed as is, as Go's `ecdsa.Sign` does, which
 * Node's crypto cannot do (it always hashes again), hence @noble/curves with `prehash: false`.
 * Signature: r ‖ s, 32 bytes each, base64 without padding. Public key: lowercase hex of PKIX DER.
 */

/** The message signed when no `AGENT_SECRET` is set. */
export const DEFAULT_AGENT_MESSAGE = 'Portainer-App';

const SCALAR_BYTES = 32;

const md5 = (message: string) => crypto.createHash('md5').update(message, 'utf8').digest();

function b64urlToBytes(s: string | undefined): Uint8Array {
  if (!s) throw new Error('not an EC key');
  return new Uint8Array(Buffer.from(s, 'base64url'));
}

/** The private scalar of a P-256 key in PEM (SEC1 "EC PRIVATE KEY" or PKCS#8). */
function privateScalar(key: crypto.KeyObject): Uint8Array {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('the agent signing key must be an ECDSA P-256 key');
  const d = b64urlToBytes(key.export({ format: 'jwk' }).d);
  if (d.length !== SCALAR_BYTES) throw new Error('invalid P-256 private key');
  return d;
}

/** The uncompressed point (04 ‖ x ‖ y) of a P-256 public key. */
function publicPoint(key: crypto.KeyObject): Uint8Array {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not an ECDSA P-256 key');
  const jwk = key.export({ format: 'jwk' });
  return new Uint8Array(Buffer.concat([Buffer.from([4]), b64urlToBytes(jwk.x), b64urlToBytes(jwk.y)]));
}

/** Headers values of a signed agent request. */
export interface AgentSignature {
  /** `X-PortainerAgent-Signature`: base64 RawStd of r ‖ s. */
  signature: string;
  /** `X-PortainerAgent-PublicKey`: lowercase hex of the PKIX DER public key. */
  publicKeyHex: string;
}

/**
 * Signs MD5(`message`) with the server's P-256 key. Each call gives a fresh (randomised)
 * signature, as Portainer's does.
 */
export function signAgentRequest(privateKeyPem: string, message: string = DEFAULT_AGENT_MESSAGE): AgentSignature {
  const key = crypto.createPrivateKey(privateKeyPem);
  const sig = p256.sign(md5(message), privateScalar(key), { prehash: false, lowS: false, extraEntropy: true });
  const publicKeyHex = (crypto.createPublicKey(key).export({ type: 'spki', format: 'der' }) as Buffer).toString('hex');
  return { signature: toRawStd(sig.toBytes('compact')), publicKeyHex };
}

/**
 * True when `signature` is a valid signature of MD5(`message`) by the key `publicKeyHex`
 * (hex PKIX DER). False for anything malformed: a non-hex or non-ECDSA key, a signature that is
 * not exactly 64 bytes, a wrong message or key.
 */
export function verifyAgentRequest(publicKeyHex: string, signature: string, message: string = DEFAULT_AGENT_MESSAGE): boolean {
  try {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(publicKeyHex)) return false;
    const key = crypto.createPublicKey({ key: Buffer.from(publicKeyHex, 'hex'), format: 'der', type: 'spki' });
    const sig = fromRawStd(signature);
    if (sig.length !== 2 * SCALAR_BYTES) return false;
    // Go's ecdsa.Verify accepts high-s signatures: so must we (lowS: false).
    return p256.verify(new Uint8Array(sig), md5(message), publicPoint(key), { prehash: false, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}

/** A new P-256 key pair in PEM: SEC1 private key ("EC PRIVATE KEY"), PKIX public key. */
export function generateAgentSigningKey(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privateKeyPem: privateKey.export({ type: 'sec1', format: 'pem' }) as string,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

/** Headers that authenticate the server to an agent (reference 3.3). */
export interface AgentSignatureHeaders {
  'X-PortainerAgent-Signature': string;
  'X-PortainerAgent-PublicKey': string;
}

/**
 * The signature headers for requests to agents, signed once: the message is a constant, so one
 * valid signature serves every request (as replayable as a fresh one would be), and agents can
 * cache its verification. `loadKey` is retried on the next call if it fails.
 */
export function agentSignatureHeaders(loadKey: () => Promise<string>): () => Promise<AgentSignatureHeaders> {
  let pending: Promise<AgentSignatureHeaders> | undefined;
  return () => (pending ??= loadKey().then((key) => {
    const sig = signAgentRequest(key);
    return { 'X-PortainerAgent-Signature': sig.signature, 'X-PortainerAgent-PublicKey': sig.publicKeyHex };
  }).catch((err) => {
    pending = undefined;
    throw err;
  }));
}
