import { ConfigError, loadConfig } from '../shared/config';
import { createLogger } from '../shared/logger';
import { countBuffersInHeapLimit } from '../shared/runtime';
import { startNode } from './node';

/** Composition root: `npm start` (all services) or any subset chosen by CAPSTAN_SERVICES. */
async function main(): Promise<void> {
  // The Docker data path streams through short-lived buffers; see countBuffersInHeapLimit.
  countBuffersInHeapLimit();
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, { nodeID: config.nodeID });
  // A rejection nobody awaited (e.g. inside a library's batching) must not take the whole server
  // down: every request path handles its own errors, so log it loudly and keep serving.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'));
  let node;
  try {
    node = await startNode(config);
  } catch (err) {
    log.fatal({ err }, `Capstan failed to start: ${(err as Error).message}`);
    process.exit(1);
  }
  const port = node.gateway?.port;
  log.info({ services: config.services, dataDir: config.dataDir, port }, port ? `Capstan is serving https://localhost:${port}` : 'Capstan node started');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    node.stop().then(() => process.exit(0), (err) => {
      log.error({ err }, 'error while stopping');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

void main();
