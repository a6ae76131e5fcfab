import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTlsMaterial } from './tls';

jest.setTimeout(30_000);

describe('loadTlsMaterial', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-tls-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const config = (dataDir: string, extra: { tlsCert?: string; tlsKey?: string } = {}) => ({ dataDir, tlsCert: '', tlsKey: '', publicUrl: 'https://capstan.example.com:9443', ...extra });

  it('generates a self-signed pair once, key 0600, and reuses it', async () => {
    const dataDir = tmp();
    const first = await loadTlsMaterial(config(dataDir));
    expect(first.source).toBe('generated');
    expect(fs.statSync(first.keyFile).mode & 0o777).toBe(0o600);
    const cert = new crypto.X509Certificate(first.cert);
    expect(cert.subjectAltName).toContain('DNS:capstan.example.com');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.checkPrivateKey(crypto.createPrivateKey(first.key))).toBe(true);

    const again = await loadTlsMaterial(config(dataDir));
    expect(again.source).toBe('reused');
    expect(again.cert).toBe(first.cert);
  });

  it('replaces a broken generated pair', async () => {
    const dataDir = tmp();
    const first = await loadTlsMaterial(config(dataDir));
    fs.writeFileSync(first.keyFile, 'not a key');
    const next = await loadTlsMaterial(config(dataDir));
    expect(next.source).toBe('generated');
    expect(next.cert).not.toBe(first.cert);
  });

  it('uses configured files and refuses a key that does not match', async () => {
    const a = await loadTlsMaterial(config(tmp()));
    const b = await loadTlsMaterial(config(tmp()));
    expect((await loadTlsMaterial(config(tmp(), { tlsCert: a.certFile, tlsKey: a.keyFile }))).source).toBe('configured');
    await expect(loadTlsMaterial(config(tmp(), { tlsCert: a.certFile, tlsKey: b.keyFile }))).rejects.toThrow(/not the private key/);
    await expect(loadTlsMaterial(config(tmp(), { tlsCert: '/nonexistent/cert.pem', tlsKey: a.keyFile }))).rejects.toThrow(/CAPSTAN_TLS_CERT/);
  });
});
