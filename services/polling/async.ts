import type { Logger, ServiceBroker } from 'moleculer';
import { call, type AgentCommand, type AsyncExchangeParams, type AsyncExchangeResult } from '../../shared/contracts';
import { AppError } from '../../shared/errors';
import type { CheckinHandler } from './checkin';
import type { EdgeRegistry } from './registry';

/** Commands handed to an agent per exchange; `capstan.more` tells a Capstan agent to ask again at once. */
export const COMMANDS_PER_REPLY = 50;
const NS_PER_S = 1_000_000_000;

/** Portainer's watermark is RFC 3339; an unparsable one counts as "nothing acknowledged yet". */
function watermarkMs(ts: string | undefined): number {
  const ms = ts ? Date.parse(ts) : NaN;
  return Number.isFinite(ms) ? ms : 0;
}

/**
 * Answered instead of a 200 when a Capstan agent's command results could not be recorded: a 200
 * is what lets the agent drop them from its journal, so without it they come again.
 */
export class AcksNotRecordedError extends AppError {
  constructor(cause: unknown) {
    super('Command results could not be recorded; retry shortly', 503, 'ACKS_NOT_RECORDED', undefined, { cause, retryable: true });
  }
}

/**
 * The async exchange (reference section 2): `POST /api/endpoints/edge/async` as polling answers
 * it. The agent is admitted like a check-in (Edge ID binding, trust, heartbeat; the environment
 * becomes async on first use), then, in this order: its snapshot goes to the snapshots service
 * (full, or a patch on the stored one: a patch that does not apply asks for a full one), its
 * command results go to the commands service (Capstan agents: per-command acks and a sequence
 * watermark; Portainer agents: the timestamp watermark), and, when its command timer fired, the
 * next commands in sequence order are handed out and marked delivered.
 *
 * A snapshots or commands service that is down costs that part of the exchange only: the reply
 * still goes out (without commands), and what the agent sent comes again (a lost patch shows as a
 * hash mismatch and a full snapshot). Except for acks: an agent drops them from its journal on a
 * 200, so when they were not recorded the exchange fails (503) and the agent sends them again.
 */
export class AsyncExchangeHandler {
  constructor(
    private readonly broker: ServiceBroker,
    private readonly registry: EdgeRegistry,
    private readonly checkins: CheckinHandler,
    private readonly log: Logger,
  ) {}

  async exchange(p: AsyncExchangeParams): Promise<AsyncExchangeResult> {
    const admitted = await this.checkins.admit({ id: p.endpointId, edgeId: p.edgeId, agentVersion: p.agentVersion, platform: p.platform, async: true });
    if ('status' in admitted) return { status: admitted.status as 400 | 403 | 404, error: admitted.error };
    const id = admitted.entry.env.Id;

    const snapshot = p.snapshotFull || p.snapshotPatch ? this.snapshot(p) : Promise.resolve(false);
    const notRecorded = await this.acknowledge(p);
    if (notRecorded && p.capstan?.acks?.length) {
      await snapshot;
      throw new AcksNotRecordedError(notRecorded);
    }
    const [needFullSnapshot, commands] = await Promise.all([snapshot, p.commandTimestamp !== undefined ? this.next(p) : Promise.resolve({ commands: [], more: false })]);

    const entry = this.registry.get(id) ?? admitted.entry;
    const t = this.registry.asyncIntervals(entry);
    return {
      status: 200,
      body: {
        pingInterval: t.Ping * NS_PER_S,
        snapshotInterval: t.Snapshot * NS_PER_S,
        commandInterval: t.Command * NS_PER_S,
        endpointID: id,
        commands: commands.commands,
        needFullSnapshot,
        capstan: { more: commands.more },
      },
    };
  }

  private async snapshot(p: AsyncExchangeParams): Promise<boolean> {
    try {
      const r = await call(this.broker, 'snapshots.accept', {
        id: p.endpointId,
        ...(p.snapshotFull ? { full: p.snapshotFull } : { patch: p.snapshotPatch, hash: p.snapshotHash }),
      }, { timeout: 30_000 });
      return r.needFullSnapshot;
    } catch (err) {
      // Bad snapshot content is the agent's to fix by sending a full one; anything else is logged.
      this.log.warn({ id: p.endpointId, err: (err as Error).message }, 'async: snapshot not stored');
      return (err as { code?: number }).code === 400 || (err as { code?: number }).code === 422;
    }
  }

  /** Records the agent's command results; the error when that failed (watermarks alone come again anyway). */
  private async acknowledge(p: AsyncExchangeParams): Promise<unknown> {
    try {
      if (p.capstan) {
        if (p.capstan.acks?.length || p.capstan.seq) {
          await call(this.broker, 'commands.ack', { id: p.endpointId, acks: p.capstan.acks ?? [], ...(p.capstan.seq !== undefined ? { watermarkSeq: p.capstan.seq } : {}) });
        }
      } else if (p.commandTimestamp && watermarkMs(p.commandTimestamp) > 0) {
        await call(this.broker, 'commands.ackUntilTimestamp', { id: p.endpointId, timestamp: p.commandTimestamp });
      }
    } catch (err) {
      this.log.warn({ id: p.endpointId, err: (err as Error).message }, 'async: command results not recorded (the agent sends them again)');
      return err;
    }
    return undefined;
  }

  private async next(p: AsyncExchangeParams): Promise<{ commands: AgentCommand[]; more: boolean }> {
    try {
      const pending = await call(this.broker, 'commands.pending', { id: p.endpointId, afterSeq: p.capstan?.seq ?? 0, limit: COMMANDS_PER_REPLY, contiguous: !!p.capstan });
      // A Portainer agent (no `capstan`) only knows its timestamp watermark.
      const after = p.capstan ? 0 : watermarkMs(p.commandTimestamp);
      const commands = after ? pending.commands.filter((c) => Date.parse(c.timestamp) > after) : pending.commands;
      if (commands.length) {
        call(this.broker, 'commands.delivered', { id: p.endpointId, seqs: commands.map((c) => c.seq) })
          .catch((err: Error) => this.log.warn({ id: p.endpointId, err: err.message }, 'async: delivery not recorded'));
      }
      return { commands, more: pending.more };
    } catch (err) {
      this.log.warn({ id: p.endpointId, err: (err as Error).message }, 'async: no commands handed out this time');
      return { commands: [], more: false };
    }
  }
}
