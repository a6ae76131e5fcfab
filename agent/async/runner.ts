import type { Logger } from 'pino';
import type { CommandOutcome } from './commands';
import type { Journal } from './journal';
import type { AsyncCommand, CommandAck } from './wire';

/** Runs one command; never throws (see `executeCommand`). */
export type Execute = (cmd: AsyncCommand) => Promise<CommandOutcome>;

const isSeq = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1;
const now = () => Math.floor(Date.now() / 1000);

/**
 * Runs a reply's commands one after the other, in array order, through the journal:
 * - a sequenced command (`seq`, Capstan) at or below the journal's `lastSeq` was handled already
 *   and is ignored; otherwise `running` is written before it starts and its ack after it ends;
 * - a `stopOnFailure` command whose predecessor (the last command this agent handled) did not
 *   succeed is not run but recorded as failed, so a chain of them after a failure is skipped;
 * - a command without `seq` (a Portainer server) just runs and advances the timestamp watermark.
 * A failure never stops the commands after it (unless they are stop-on-failure).
 */
export class CommandRunner {
  constructor(
    private readonly journal: Journal,
    private readonly execute: Execute,
    private readonly log: Logger,
    /** Checked between commands: once true, the rest wait for the next start. */
    private readonly stopping: () => boolean = () => false,
  ) {}

  /** Handles `commands`; resolves to how many were run or recorded (ignored ones not counted). */
  async run(commands: AsyncCommand[]): Promise<number> {
    let handled = 0;
    for (const cmd of commands) {
      if (this.stopping()) break;
      if (!isSeq(cmd.seq)) {
        const outcome = await this.execute(cmd);
        this.report(cmd, outcome);
        if (typeof cmd.timestamp === 'string' && cmd.timestamp) this.journal.setCommandTimestamp(cmd.timestamp);
        handled++;
        continue;
      }
      const seq = cmd.seq;
      if (seq <= this.journal.lastSeq) {
        this.log.debug({ seq, lastSeq: this.journal.lastSeq }, 'command already handled; ignored');
        continue;
      }
      let outcome: CommandOutcome;
      const prev = this.journal.lastSeq;
      if (cmd.stopOnFailure === true && prev > 0 && !this.journal.lastOk) {
        outcome = { ok: false, error: `not run: command ${prev} failed and this command was queued stop-on-failure` };
      } else {
        this.journal.begin(seq);
        outcome = await this.execute(cmd);
      }
      const ack: CommandAck = { seq, status: outcome.ok ? 'succeeded' : 'failed', finishedAt: now() };
      if (outcome.error !== undefined) ack.error = outcome.error;
      if (outcome.result !== undefined) ack.result = outcome.result;
      this.journal.finish(ack, typeof cmd.timestamp === 'string' && cmd.timestamp ? cmd.timestamp : undefined);
      this.report(cmd, outcome);
      handled++;
    }
    return handled;
  }

  private report(cmd: AsyncCommand, outcome: CommandOutcome): void {
    const fields = { seq: cmd.seq, id: cmd.id, type: cmd.type };
    if (outcome.ok) this.log.info(fields, 'command succeeded');
    else this.log.warn({ ...fields, error: outcome.error }, 'command failed');
  }
}
