import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_KEYS, ConfigError, loadConfig } from '.';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ httpsPort: 9443, tunnelPort: 8000, election: 'local', transporter: '', namespace: 'capstan', leaseTtlMs: 2000 });
    expect(c.services).toContain('gateway');
    expect(c.dataDir).toBe(path.resolve('./data'));
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('offers the push channel unless CAPSTAN_PUSH=0', () => {
    expect(loadConfig({}).push).toBe(true);
    expect(loadConfig({ CAPSTAN_PUSH: '0' }).push).toBe(false);
    expect(() => loadConfig({ CAPSTAN_PUSH: 'maybe' })).toThrow(/CAPSTAN_PUSH: expected 1 or 0/);
  });

  it('batches check-ins for a remote polling replica for 2 ms unless CAPSTAN_CHECKIN_BATCH_MS says otherwise (0: never)', () => {
    expect(loadConfig({}).checkinBatchMs).toBe(2);
    expect(loadConfig({ CAPSTAN_CHECKIN_BATCH_MS: '0' }).checkinBatchMs).toBe(0);
    expect(() => loadConfig({ CAPSTAN_CHECKIN_BATCH_MS: '1.5' })).toThrow(/CAPSTAN_CHECKIN_BATCH_MS: expected an integer/);
    expect(() => loadConfig({ CAPSTAN_CHECKIN_BATCH_MS: '500' })).toThrow(/checkinBatchMs/);
  });

  it('puts the tunnel data listener on loopback and a free port unless told otherwise', () => {
    expect(loadConfig({})).toMatchObject({ tunnelDataHost: '127.0.0.1', tunnelDataPort: 0, tunnelDataAdvertise: '' });
    expect(loadConfig({ CAPSTAN_TUNNEL_DATA_HOST: '0.0.0.0', CAPSTAN_TUNNEL_DATA_PORT: '8001', CAPSTAN_TUNNEL_DATA_ADVERTISE: '10.42.0.17' }))
      .toMatchObject({ tunnelDataHost: '0.0.0.0', tunnelDataPort: 8001, tunnelDataAdvertise: '10.42.0.17' });
    expect(() => loadConfig({ CAPSTAN_TUNNEL_DATA_PORT: '70000' })).toThrow(/tunnelDataPort/);
  });

  it('elects through Redis by default once a transporter is set', () => {
    expect(loadConfig({ CAPSTAN_TRANSPORTER: 'nats://127.0.0.1:4222' }).election).toBe('redis');
  });

  it('reports every problem at once', () => {
    let err: unknown;
    try {
      loadConfig({ CAPSTAN_HTTPS_PORT: 'abc', CAPSTAN_SERVICES: 'state,nope', CAPSTAN_TLS_CERT: '/x.pem', CAPSTAN_ELECTION: 'zk' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/CAPSTAN_HTTPS_PORT/);
    expect(problems).toMatch(/unknown service "nope"/);
    expect(problems).toMatch(/CAPSTAN_TLS_CERT and CAPSTAN_TLS_KEY/);
    expect(problems).toMatch(/election/);
  });

  it('is documented key by key in the README table', () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const missing = CONFIG_KEYS.filter((k) => !readme.includes(`| \`${k.key}\``));
    expect(missing.map((k) => k.key)).toEqual([]);
  });
});
