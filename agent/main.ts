import pino from 'pino';
import { AgentConfigError, loadAgentConfig } from './config';
import { DockerUnreachableError, pingDocker } from './docker';
import { Poller } from './poller';

/**
 * The edge agent (`npm run agent`, or `node dist/agent/main.js` in an image): validates its
 * configuration and the local Docker engine, then checks in with the server on its interval.
 * Configuration errors and an unreachable engine are one clear line each and exit code 2 / 1.
 */
async function main(): Promise<void> {
  let config;
  try {
    config = loadAgentConfig();
  } catch (err) {
    if (err instanceof AgentConfigError) {
      process.stderr.write(`capstan-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { edgeId: config.edgeId, environment: config.key.endpointId } });
  try {
    const apiVersion = await pingDocker(config.dockerHost);
    log.info({ dockerHost: config.dockerHost, apiVersion }, 'Docker engine reachable');
  } catch (err) {
    if (err instanceof DockerUnreachableError) {
      process.stderr.write(`capstan-agent: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const poller = new Poller(config, log, (reply) => {
    log.debug({ status: reply.status, checkin: reply.checkin }, 'checked in');
  });
  poller.start();
  log.info({ api: config.key.apiUrl }, 'polling');
  const stop = () => {
    poller.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main();
