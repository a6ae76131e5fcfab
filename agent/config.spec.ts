import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeEdgeKey } from '../shared/crypto';
import { AgentConfigError, loadAgentConfig, parseGoDuration } from './config';

const KEY = encodeEdgeKey({ apiUrl: 'https://capstan.example.com:9443', tunnelAddr: 'capstan.example.com:8000', fingerprint: 'A'.repeat(43) + '=', endpointId: 12 });

describe('agent configuration', () => {
  let dataPath: string;
  beforeEach(() => (dataPath = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-agent-'))));
  afterEach(() => fs.rmSync(dataPath, { recursive: true, force: true }));

  it('reads Portainer variable names with their defaults and persists the key', () => {
    const c = loadAgentConfig({ EDGE: '1', EDGE_KEY: KEY, EDGE_ID: 'host-1', DATA_PATH: dataPath });
    expect(c).toMatchObject({ edgeId: 'host-1', inactivityTimeoutMs: 300_000, dockerHost: 'unix:///var/run/docker.sock', insecurePoll: false, edgeTunnel: true, push: true });
    expect(loadAgentConfig({ EDGE: '1', EDGE_KEY: KEY, EDGE_ID: 'host-1', DATA_PATH: dataPath, EDGE_PUSH: '0' }).push).toBe(false);
    expect(c.key).toEqual({ apiUrl: 'https://capstan.example.com:9443', tunnelAddr: 'capstan.example.com:8000', fingerprint: 'A'.repeat(43) + '=', endpointId: 12 });
    expect(fs.readFileSync(path.join(dataPath, 'agent_edge_key'), 'utf8')).toBe(KEY);
    expect(loadAgentConfig({ EDGE: '1', EDGE_ID: 'host-1', DATA_PATH: dataPath }).key.endpointId).toBe(12);
  });

  it('reports every problem at once, in words, for a malformed key', () => {
    let err: unknown;
    try {
      loadAgentConfig({ EDGE: '1', EDGE_KEY: 'bm90LWEta2V5', EDGE_INACTIVITY_TIMEOUT: '5 minutes', DOCKER_HOST: 'ftp://x', DATA_PATH: dataPath });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentConfigError);
    expect((err as AgentConfigError).problems).toEqual([
      'EDGE_KEY: invalid key format: expected 4 fields',
      'EDGE_ID: missing (any stable identifier of this host, e.g. a UUID)',
      'EDGE_INACTIVITY_TIMEOUT: invalid duration "5 minutes" (expected e.g. 5m, 90s, 1h30m)',
      'DOCKER_HOST: expected unix:///path or tcp://host:port, got "ftp://x"',
    ]);
  });

  it('EDGE_ASYNC=1 or true selects async mode, which also accepts a global key', () => {
    const base = { EDGE: '1', EDGE_KEY: KEY, EDGE_ID: 'host-1', DATA_PATH: dataPath };
    expect(loadAgentConfig(base).edgeAsync).toBe(false);
    expect(loadAgentConfig({ ...base, EDGE_ASYNC: '1' }).edgeAsync).toBe(true);
    expect(loadAgentConfig({ ...base, EDGE_ASYNC: 'true' }).edgeAsync).toBe(true);
    expect(loadAgentConfig({ ...base, EDGE_ASYNC: '0' }).edgeAsync).toBe(false);
    const global = encodeEdgeKey({ apiUrl: 'https://capstan.example.com:9443', tunnelAddr: 'capstan.example.com:8000', fingerprint: 'A'.repeat(43) + '=', endpointId: 0 });
    expect(() => loadAgentConfig({ ...base, EDGE_KEY: global })).toThrow(/global keys \(environment id 0\) are only supported with EDGE_ASYNC=1/);
    expect(loadAgentConfig({ ...base, EDGE_KEY: global, EDGE_ASYNC: 'true' }).key.endpointId).toBe(0);
  });

  it('parses Go durations', () => {
    expect(parseGoDuration('5m')).toBe(300_000);
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('250ms')).toBe(250);
    expect(() => parseGoDuration('10')).toThrow(/invalid duration/);
  });
});
