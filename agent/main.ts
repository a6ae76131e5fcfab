import pino, { type Logger } from 'pino';
import { AsyncAgent } from './async';
import { AgentConfigError, loadAgentConfig, type AgentConfig } from './config';
import { DockerUnreachableError, pingDocker } from './docker';
import { startAgentApi } from './api-server';
import { Poller, type PollResponse } from './poller';
import { PushChannel } from './push';
import { countBuffersInHeapLimit } from '../shared/runtime';
import { createSignatureVerifier } from './signature-check';
import { TunnelManager } from './tunnel-manager';

/**
 * The edge agent (`npm run agent`, or `node dist/agent/main.js` in an image): validates its
 * configuration and the local Docker engine, then checks in with the server on its interval
 * (standard mode), or exchanges with it on the async endpoint's timers (EDGE_ASYNC=1); in both
 * modes it moves to the server's push channel when a reply offers one (EDGE_PUSH=0 never does).
 * Configuration errors and an unreachable engine are one clear line each and exit code 2 / 1.
 */
async function main(): Promise<void> {
  // Every byte through the tunnel passes short-lived buffers; see countBuffersInHeapLimit.
  countBuffersInHeapLimit();
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
  if (config.edgeAsync) {
    runAsync(config, log);
    return;
  }
  // The API the server reaches through the tunnel: signed requests only, streamed to the engine.
  // The API server starts first (the tunnel targets its port); its hooks reach the manager made next.
  const late: { tunnels?: TunnelManager } = {};
  const api = await startAgentApi({
    dockerHost: config.dockerHost, agentVersion: config.agentVersion,
    verify: createSignatureVerifier({ secret: process.env.AGENT_SECRET || undefined }),
    onActivity: () => late.tunnels?.touch(),
    onSession: (d) => late.tunnels?.session(d),
  });
  // Capstan's push channel, once the server offers it: replies arrive at once and polling pauses.
  const push = config.push ? new PushChannel({
    apiUrl: config.key.apiUrl, edgeId: config.edgeId, agentVersion: config.agentVersion, insecure: config.insecurePoll, log,
    onStatus: (body, etag) => {
      const reply = body as PollResponse;
      log.debug({ status: reply.status, checkin: reply.checkin }, 'pushed status');
      return poller.acceptPushed(reply, etag);
    },
    onNudge: () => undefined, // command nudges are for async agents
    onUp: () => poller.pause(),
    onDown: () => poller.resume(),
  }) : undefined;
  const poller: Poller = new Poller(config, log, (reply) => tunnels.onReply(reply), (path) => push?.offer(path));
  const tunnels = new TunnelManager(config, api, log, () => setTimeout(() => poller.pollNow(), 250));
  late.tunnels = tunnels;
  poller.start();
  log.info({ api: config.key.apiUrl, agentApiPort: api.port }, 'polling');
  const stop = () => {
    poller.stop();
    push?.stop();
    // A tunnel whose server is gone may never finish closing: never let that hold the process.
    setTimeout(() => process.exit(0), 5000).unref();
    void Promise.all([tunnels.stop(), api.close()]).finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/**
 * Async mode: no poll, no tunnel, no agent API (nothing could reach it). On SIGTERM the timers
 * stop and a command already running gets up to 5 s to finish; one cut short is reported as
 * interrupted after the restart, never run twice.
 */
function runAsync(config: AgentConfig, log: Logger): void {
  const agent = AsyncAgent.fromConfig(config, log);
  agent.start();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 5000).unref();
    void agent.stop().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main();
