import fs from 'node:fs';
import { loadConfig, type Config } from '../../shared/config';
import { startNode, type CapstanNode } from '../../services/node';
import { tempDataDir, uniqueNamespace } from './ids';

export { tempDataDir, uniqueNamespace };

export interface TestNode {
  node: CapstanNode;
  config: Config;
  /** Base URL of the HTTPS API, e.g. https://127.0.0.1:40123; empty when the node runs no gateway. */
  url: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

/**
 * Starts a whole embedded Capstan (every service, in-process transporter) on free ports with a
 * temporary data directory. Pass `dataDir` to restart on the same data.
 */
export async function startTestNode(overrides: Partial<Config> = {}, env: NodeJS.ProcessEnv = {}): Promise<TestNode> {
  const dataDir = overrides.dataDir ?? tempDataDir();
  const config = loadConfig({ CAPSTAN_LOG_LEVEL: 'warn', ...env }, {
    host: '127.0.0.1', httpsPort: 0, tunnelPort: 0, namespace: uniqueNamespace('node'), ...overrides, dataDir,
  });
  const node = await startNode(config);
  const url = node.gateway ? `https://127.0.0.1:${node.gateway.port}` : '';
  return {
    node, config, url,
    async stop(opts) {
      await node.stop();
      if (!opts?.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
