import type { ServiceBroker } from 'moleculer';
import { call, EnvironmentType, type Principal } from '../../../shared/contracts';
import { AppError, BadRequestError } from '../../../shared/errors';
import { agentSignatureHeaders } from '../../../shared/protocol';
import { tunnelTarget } from '../../../shared/tunnel';

/** Longest wait for a tunnel; the tunnel service's own limit (2 × check-in interval + 5 s, a 504) normally decides first. */
const ENSURE_TUNNEL_TIMEOUT_MS = 600_000;
import { assertEnvironmentAccess } from '../../access';

/** Sent by callers; never forwarded to an agent. */
export const CALLER_ONLY_HEADERS = ['authorization', 'x-api-key', 'cookie'] as const;

/** The agent's API is unreachable right now (no agent bound, or it did not connect in time). */
export class EnvironmentUnreachableError extends AppError {
  constructor(message: string, data?: unknown) {
    super(message, 503, 'ENVIRONMENT_UNREACHABLE', data, { retryable: true });
  }
}

/** Async environments have no live Docker API: their reads come from the latest snapshot. */
export class AsyncEnvironmentError extends AppError {
  constructor(id: number) {
    super('This environment is in async mode: its Docker API is not reachable live. Reads of containers, images, volumes, networks, info and version are served from its latest snapshot; changes are queued as commands (POST /api/endpoints/{id}/commands)', 409, 'ASYNC_ENVIRONMENT', { id });
  }
}

/**
 * Resolves where the Docker API of environment `id` answers for this caller, with the signature
 * headers the agent requires: access check, Edge environment with an agent bound, tunnel open.
 */
export function dockerTargetResolver(broker: ServiceBroker) {
  const signature = agentSignatureHeaders(() => call(broker, 'state.getSecret', { name: 'agentPrivateKey' }).then((s) => s.value));
  return async (principal: Principal, id: number) => {
    const env = await call(broker, 'state.getEnvironment', { id });
    await assertEnvironmentAccess(broker, principal, env);
    if (env.Type !== EnvironmentType.EdgeAgentOnDocker) {
      throw new BadRequestError('The Docker API is served through Edge agents only', { id, Type: env.Type });
    }
    if (!env.EdgeID) throw new EnvironmentUnreachableError('No agent has checked in for this environment yet', { id });
    if (env.Edge.AsyncMode) throw new AsyncEnvironmentError(id);
    // The tunnel service waits up to 2 × the check-in interval + 5 s for the agent and answers 504 itself.
    const route = await call(broker, 'tunnel.ensureTunnel', { id }, { timeout: ENSURE_TUNNEL_TIMEOUT_MS });
    // Channels opened directly when this process holds the tunnel, else through its node's data listener.
    return { target: tunnelTarget(route), headers: { ...(await signature()) } as Record<string, string> };
  };
}
