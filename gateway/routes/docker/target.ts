import type { ServiceBroker } from 'moleculer';
import { call, EnvironmentType, type Principal } from '../../../shared/contracts';
import { AppError, BadRequestError } from '../../../shared/errors';
import { signAgentRequest } from '../../../shared/protocol';
import { assertEnvironmentAccess } from '../../access';

/** Sent by callers; never forwarded to an agent. */
export const CALLER_ONLY_HEADERS = ['authorization', 'x-api-key', 'cookie'] as const;

/** The agent's API is unreachable right now (no agent bound, or it did not connect in time). */
export class EnvironmentUnreachableError extends AppError {
  constructor(message: string, data?: unknown) {
    super(message, 503, 'ENVIRONMENT_UNREACHABLE', data, { retryable: true });
  }
}

/**
 * Resolves where the Docker API of environment `id` answers for this caller, with the signature
 * headers the agent requires: access check, Edge environment with an agent bound, tunnel open.
 */
export function dockerTargetResolver(broker: ServiceBroker) {
  let signingKey: Promise<string> | undefined;
  const key = () => (signingKey ??= call(broker, 'state.getSecret', { name: 'agentPrivateKey' }).then((s) => s.value).catch((err) => {
    signingKey = undefined;
    throw err;
  }));
  return async (principal: Principal, id: number) => {
    const env = await call(broker, 'state.getEnvironment', { id });
    await assertEnvironmentAccess(broker, principal, env);
    if (env.Type !== EnvironmentType.EdgeAgentOnDocker) {
      throw new BadRequestError('The Docker API is served through Edge agents only', { id, Type: env.Type });
    }
    if (!env.EdgeID) throw new EnvironmentUnreachableError('No agent has checked in for this environment yet', { id });
    const { host, port } = await call(broker, 'tunnel.ensureTunnel', { id });
    const sig = signAgentRequest(await key());
    return {
      target: { host, port },
      headers: { 'X-PortainerAgent-Signature': sig.signature, 'X-PortainerAgent-PublicKey': sig.publicKeyHex },
    };
  };
}
