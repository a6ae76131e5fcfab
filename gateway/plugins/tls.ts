import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import fp from 'fastify-plugin';
import selfsigned from 'selfsigned';
import type { Config } from '../../shared/config';

/** PEM certificate chain and private key the HTTPS server presents. */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** Where they came from: files configured by the operator, or the generated pair in the data dir. */
  source: 'configured' | 'generated' | 'reused';
  certFile: string;
  keyFile: string;
}

/**
 * TLS 1.2 suites: ECDHE key exchange with AEAD ciphers only (forward secrecy, no CBC, no RSA
 * key transport). The TLS 1.3 suites are listed explicitly so a changed OpenSSL default cannot
 * widen them.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Options for `https.createServer`: TLS ≥ 1.2, ECDHE suites, server cipher preference. */
export function tlsServerOptions(material: Pick<TlsMaterial, 'cert' | 'key'>): TlsOptions & SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: 'TLSv1.2',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
  };
}

const CERT_DAYS = 3650;
/** Regenerate a generated certificate this long before it expires, so clients never see an expired one. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

/**
 * Returns the certificate to serve. Configured files (CAPSTAN_TLS_CERT/KEY) win; otherwise a
 * self-signed pair is generated once into `<dataDir>/certs/` (key 0600) and reused on every later
 * start, so agents that pinned it keep trusting the server.
 */
export async function loadTlsMaterial(config: Pick<Config, 'tlsCert' | 'tlsKey' | 'dataDir' | 'publicUrl'>): Promise<TlsMaterial> {
  if (config.tlsCert && config.tlsKey) {
    const cert = readPem(config.tlsCert, 'CAPSTAN_TLS_CERT');
    const key = readPem(config.tlsKey, 'CAPSTAN_TLS_KEY');
    if (!pairMatches(cert, key)) throw new Error(`CAPSTAN_TLS_KEY (${config.tlsKey}) is not the private key of CAPSTAN_TLS_CERT (${config.tlsCert})`);
    return { cert, key, source: 'configured', certFile: config.tlsCert, keyFile: config.tlsKey };
  }
  const dir = path.join(config.dataDir, 'certs');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const existing = readGenerated(certFile, keyFile);
  if (existing) return { ...existing, source: 'reused', certFile, keyFile };

  const fresh = await generateSelfSigned(config.publicUrl);
  fs.mkdirSync(config.dataDir, { recursive: true });
  // Written into a private temp dir and renamed into place in one step: a crash never leaves half
  // a pair, and of two processes starting on the same data dir exactly one pair wins.
  const tmp = fs.mkdtempSync(path.join(config.dataDir, '.certs-'));
  try {
    fs.writeFileSync(path.join(tmp, 'key.pem'), fresh.key, { mode: 0o600 });
    fs.chmodSync(path.join(tmp, 'key.pem'), 0o600);
    fs.writeFileSync(path.join(tmp, 'cert.pem'), fresh.cert, { mode: 0o644 });
    if (fs.existsSync(dir)) {
      // Another process may have just installed a good pair: use it rather than replace it.
      const winner = readGenerated(certFile, keyFile);
      if (winner) {
        fs.rmSync(tmp, { recursive: true, force: true });
        return { ...winner, source: 'reused', certFile, keyFile };
      }
      // Invalid, mismatched or expiring: keep it aside for the operator instead of deleting it.
      fs.renameSync(dir, `${dir}.replaced-${Date.now()}`);
    }
    fs.renameSync(tmp, dir);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const winner = readGenerated(certFile, keyFile);
    if (winner) return { ...winner, source: 'reused', certFile, keyFile };
    throw new Error(`cannot write the generated TLS certificate to ${dir}`, { cause: err });
  }
  fs.chmodSync(dir, 0o700);
  return { ...fresh, source: 'generated', certFile, keyFile };
}

function readPem(file: string, key: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${key}: cannot read ${file}`, { cause: err });
  }
}

/** The generated pair, when it exists, matches and is not about to expire. */
function readGenerated(certFile: string, keyFile: string): { cert: string; key: string } | null {
  let cert: string;
  let key: string;
  try {
    cert = fs.readFileSync(certFile, 'utf8');
    key = fs.readFileSync(keyFile, 'utf8');
  } catch {
    return null;
  }
  if (!pairMatches(cert, key)) return null;
  const notAfter = Date.parse(new crypto.X509Certificate(cert).validTo);
  if (!(notAfter - Date.now() > RENEW_BEFORE_MS)) return null;
  return { cert, key };
}

function pairMatches(cert: string, key: string): boolean {
  try {
    return new crypto.X509Certificate(cert).checkPrivateKey(crypto.createPrivateKey(key));
  } catch {
    return false;
  }
}

/** Subject alternative names: loopback, this host, and the public URL's host when configured. */
function altNames(publicUrl: string): Array<{ type: number; value?: string; ip?: string }> {
  const names = new Set(['localhost', os.hostname()]);
  const ips = new Set(['127.0.0.1', '::1']);
  if (publicUrl) {
    try {
      const host = new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');
      if (/^[0-9.]+$/.test(host) || host.includes(':')) ips.add(host);
      else if (host) names.add(host);
    } catch {
      // An invalid public URL is reported where it is used; the certificate just omits it.
    }
  }
  return [...[...names].map((value) => ({ type: 2, value })), ...[...ips].map((ip) => ({ type: 7, ip }))];
}

async function generateSelfSigned(publicUrl: string): Promise<{ cert: string; key: string }> {
  // ECDSA P-256: a fleet reconnecting at once costs one signature per TLS handshake, about ten
  // times cheaper than with RSA-2048; Portainer's agents, the Docker CLI and browsers all accept it.
  const attrs = [{ name: 'commonName', value: 'capstan' }, { name: 'organizationName', value: 'Capstan' }];
  const notBeforeDate = new Date();
  const notAfterDate = new Date(notBeforeDate.getTime() + CERT_DAYS * 86_400_000);
  const pems = await selfsigned.generate(attrs, {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: altNames(publicUrl) },
    ],
  } as Parameters<typeof selfsigned.generate>[1]);
  return { cert: pems.cert, key: pems.private };
}

/**
 * Response headers that belong to the transport: `X-Content-Type-Options: nosniff` on every
 * answer that can carry a body, errors and 404s included (Portainer sends it always). A 304 has
 * no body to sniff, and a cache that revalidates with it keeps the headers of the response it
 * stored (RFC 9111 §4.3.4), nosniff included: leaving it off saves 33 of the ~200 bytes of the
 * agents' most frequent reply, the unchanged check-in.
 */
export const securityHeaders = fp(async (fastify) => {
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (reply.statusCode !== 304) reply.header('x-content-type-options', 'nosniff');
    done(null, payload);
  });
}, { name: 'capstan-security-headers', fastify: '5.x' });
