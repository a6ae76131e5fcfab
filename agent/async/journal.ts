import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { INITIAL_COMMAND_TIMESTAMP, type CommandAck } from './wire';

/** The journal's file name under DATA_PATH. */
export const JOURNAL_FILE = 'capstan-async.json';

/** Error recorded for a command the agent was running when it died. */
export const INTERRUPTED_ERROR = 'interrupted by an agent restart; not re-run';

/** What survives an agent restart in async mode. */
export interface JournalState {
  /** The environment these commands belong to (adopted from the server for a global key). */
  endpointId: number;
  /** The highest sequence number handled; commands at or below it are never run again. */
  lastSeq: number;
  /** Whether command `lastSeq` succeeded (decides a following stop-on-failure command). */
  lastOk: boolean;
  /** Set while command `running` executes: found at start-up, it means the agent died mid-command. */
  running?: number;
  /** Portainer's watermark: the timestamp of the last command handled. */
  commandTimestamp: string;
  /** Outcomes the server has not confirmed yet (no 200 to a request carrying them). */
  pendingAcks: CommandAck[];
}

const fresh = (endpointId: number): JournalState => ({
  endpointId, lastSeq: 0, lastOk: true, commandTimestamp: INITIAL_COMMAND_TIMESTAMP, pendingAcks: [],
});

function isState(v: unknown): v is JournalState {
  const s = v as JournalState;
  return !!s && typeof s === 'object' && Number.isInteger(s.endpointId) && Number.isInteger(s.lastSeq)
    && typeof s.lastOk === 'boolean' && typeof s.commandTimestamp === 'string' && Array.isArray(s.pendingAcks)
    && (s.running === undefined || Number.isInteger(s.running));
}

/** Replaces `file` with `data` so a reader or a crash sees the old content or the new, never a mix. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  try {
    // The rename itself is durable only once the directory entry is on disk.
    const dir = fs.openSync(path.dirname(file), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  } catch { /* some filesystems refuse fsync on a directory; the rename is still atomic */ }
}

/**
 * The command journal that makes sequenced commands run at most once across restarts and their
 * outcomes reach the server at least once: every change is written (atomically) before the agent
 * acts on it.
 */
export class Journal {
  private s: JournalState;

  private constructor(readonly file: string, state: JournalState) {
    this.s = state;
  }

  /**
   * Loads `<dataPath>/capstan-async.json` (or starts a fresh one). A command found `running` is
   * not run again: it is recorded as failed with {@link INTERRUPTED_ERROR}. A journal of another
   * environment (the agent got a new key) is set aside and a fresh one started.
   */
  static open(dataPath: string, endpointId: number, log?: Logger): Journal {
    fs.mkdirSync(dataPath, { recursive: true });
    const file = path.join(dataPath, JOURNAL_FILE);
    let state = fresh(endpointId);
    if (fs.existsSync(file)) {
      let loaded: unknown;
      try {
        loaded = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch { /* reported below */ }
      if (!isState(loaded)) {
        const aside = `${file}.corrupt-${Date.now()}`;
        fs.renameSync(file, aside);
        log?.error({ file: aside }, 'the async command journal is unreadable; set aside, starting a fresh one');
      } else if (endpointId !== 0 && loaded.endpointId !== 0 && loaded.endpointId !== endpointId) {
        log?.warn({ journal: loaded.endpointId, key: endpointId }, 'the async command journal belongs to another environment; starting a fresh one');
      } else {
        state = { ...loaded, endpointId: endpointId || loaded.endpointId };
      }
    }
    const journal = new Journal(file, state);
    if (state.running !== undefined) {
      log?.warn({ seq: state.running }, 'the agent stopped while running a command; reporting it as failed, not re-running it');
      journal.finish({ seq: state.running, status: 'failed', error: INTERRUPTED_ERROR, finishedAt: Math.floor(Date.now() / 1000) });
    } else {
      journal.save();
    }
    return journal;
  }

  /** A copy of the current state. */
  get state(): Readonly<JournalState> {
    return structuredClone(this.s);
  }

  get endpointId(): number {
    return this.s.endpointId;
  }

  get lastSeq(): number {
    return this.s.lastSeq;
  }

  get lastOk(): boolean {
    return this.s.lastOk;
  }

  get commandTimestamp(): string {
    return this.s.commandTimestamp;
  }

  get pendingAcks(): CommandAck[] {
    return structuredClone(this.s.pendingAcks);
  }

  /** Records that command `seq` is about to run (written before it starts). */
  begin(seq: number): void {
    this.s.running = seq;
    this.save();
  }

  /** Records a sequenced command's outcome (and the watermark of its timestamp, when given). */
  finish(ack: CommandAck, commandTimestamp?: string): void {
    delete this.s.running;
    this.s.lastSeq = Math.max(this.s.lastSeq, ack.seq);
    this.s.lastOk = ack.status === 'succeeded';
    this.s.pendingAcks = [...this.s.pendingAcks.filter((a) => a.seq !== ack.seq), ack];
    if (commandTimestamp) this.s.commandTimestamp = commandTimestamp;
    this.save();
  }

  /** Advances Portainer's watermark (for a command without a sequence number). */
  setCommandTimestamp(ts: string): void {
    this.s.commandTimestamp = ts;
    this.save();
  }

  /** Adopts the environment id the server assigned. */
  setEndpointId(id: number): void {
    this.s.endpointId = id;
    this.save();
  }

  /** Drops the acks a 200 reply confirmed. */
  removeAcks(seqs: Iterable<number>): void {
    const done = new Set(seqs);
    const left = this.s.pendingAcks.filter((a) => !done.has(a.seq));
    if (left.length === this.s.pendingAcks.length) return;
    this.s.pendingAcks = left;
    this.save();
  }

  private save(): void {
    writeFileAtomic(this.file, `${JSON.stringify(this.s, null, 1)}\n`);
  }
}
