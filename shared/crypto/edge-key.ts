import crypto from 'node:crypto';
import { utils as sshUtils } from 'ssh2';

/** The four fields of a Portainer EDGE_KEY (reference 1.2). */
export interface EdgeKeyFields {
  apiUrl: string;
  tunnelAddr: string;
  fingerprint: string;
  endpointId: number;
}

/** Unpadded standard base64 of `apiUrl|tunnelAddr|fingerprint|id`, exactly as Portainer encodes it. */
export function encodeEdgeKey(f: EdgeKeyFields): string {
  const plain = `${f.apiUrl}|${f.tunnelAddr}|${f.fingerprint}|${f.endpointId}`;
  return Buffer.from(plain, 'utf8').toString('base64').replace(/=+$/, '');
}

/** Decodes an EDGE_KEY; throws "invalid key format" like the Portainer agent for anything else. */
export function decodeEdgeKey(key: string): EdgeKeyFields {
  const trimmed = key.trim();
  if (!/^[A-Za-z0-9+/]+$/.test(trimmed)) throw new Error('invalid key format: not unpadded base64');
  const parts = Buffer.from(trimmed, 'base64').toString('utf8').split('|');
  if (parts.length !== 4) throw new Error('invalid key format: expected 4 fields');
  const id = Number(parts[3]);
  if (!/^[0-9]+$/.test(parts[3]) || !Number.isSafeInteger(id)) throw new Error('invalid key format: environment id is not an integer');
  return { apiUrl: parts[0], tunnelAddr: parts[1], fingerprint: parts[2], endpointId: id };
}

/** A new ECDSA P-256 private key, PEM ("EC PRIVATE KEY"), for the tunnel server. */
export function generateTunnelKey(): string {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKey.export({ type: 'sec1', format: 'pem' }).toString();
}

/**
 * chisel's server fingerprint: standard padded base64 of SHA-256 over the SSH wire-format public
 * key (44 characters ending in "="), which is what agents pin.
 */
export function tunnelFingerprint(privateKeyPem: string): string {
  const parsed = sshUtils.parseKey(privateKeyPem);
  if (parsed instanceof Error) throw new Error(`invalid tunnel key: ${parsed.message}`, { cause: parsed });
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return crypto.createHash('sha256').update(key.getPublicSSH()).digest('base64');
}
