import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { INTERRUPTED_ERROR, JOURNAL_FILE, Journal, writeFileAtomic } from './journal';
import { CommandRunner } from './runner';
import type { AsyncCommand } from './wire';

const log = pino({ level: 'silent' });
const cmd = (seq: number, extra: Partial<AsyncCommand> = {}): AsyncCommand =>
  ({ id: seq, seq, type: 'container', endpointID: 4, timestamp: `2025-01-01T00:00:0${seq}Z`, value: {}, ...extra });

describe('async command journal', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-journal-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('replaces the file atomically: a reader of the old file sees it whole, no temp file is left', () => {
    const file = path.join(dir, 'j.json');
    writeFileAtomic(file, JSON.stringify({ v: 1, pad: 'x'.repeat(10_000) }));
    const oldFd = fs.openSync(file, 'r');
    try {
      writeFileAtomic(file, JSON.stringify({ v: 2 }));
      // In-place truncation would show the reader an empty or mixed file; a rename keeps the old inode whole.
      expect(JSON.parse(fs.readFileSync(oldFd, 'utf8')).v).toBe(1);
    } finally {
      fs.closeSync(oldFd);
    }
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ v: 2 });
    expect(fs.readdirSync(dir)).toEqual(['j.json']);
  });

  it('persists every step, so a restarted agent knows what it handled', () => {
    const j = Journal.open(dir, 4);
    expect(j.state).toEqual({ endpointId: 4, lastSeq: 0, lastOk: true, commandTimestamp: '2000-01-01T00:00:00Z', pendingAcks: [] });
    j.begin(1);
    expect(JSON.parse(fs.readFileSync(path.join(dir, JOURNAL_FILE), 'utf8')).running).toBe(1);
    j.finish({ seq: 1, status: 'succeeded', finishedAt: 100 }, '2025-01-01T00:00:01Z');
    const again = Journal.open(dir, 4);
    expect(again.state).toEqual({
      endpointId: 4, lastSeq: 1, lastOk: true, commandTimestamp: '2025-01-01T00:00:01Z',
      pendingAcks: [{ seq: 1, status: 'succeeded', finishedAt: 100 }],
    });
    again.removeAcks([1]);
    expect(Journal.open(dir, 4).pendingAcks).toEqual([]);
  });

  it('a command found running after a restart is acked as interrupted, never re-run, and breaks a stop-on-failure chain', async () => {
    const j = Journal.open(dir, 4);
    j.finish({ seq: 4, status: 'succeeded', finishedAt: 1 });
    j.begin(5); // the agent dies here

    const restarted = Journal.open(dir, 4, log);
    expect(restarted.lastSeq).toBe(5);
    expect(restarted.lastOk).toBe(false);
    expect(restarted.state.running).toBeUndefined();
    expect(restarted.pendingAcks).toEqual([
      { seq: 4, status: 'succeeded', finishedAt: 1 },
      { seq: 5, status: 'failed', error: INTERRUPTED_ERROR, finishedAt: expect.any(Number) },
    ]);

    const ran: number[] = [];
    const runner = new CommandRunner(restarted, async (c) => {
      ran.push(c.seq!);
      return { ok: true };
    }, log);
    // The server re-sends 5 (it never saw its ack), then 6 queued stop-on-failure, then 7.
    await runner.run([cmd(5), cmd(6, { stopOnFailure: true }), cmd(7)]);
    expect(ran).toEqual([7]);
    const acks = restarted.pendingAcks;
    expect(acks.map((a) => [a.seq, a.status])).toEqual([[4, 'succeeded'], [5, 'failed'], [6, 'failed'], [7, 'succeeded']]);
    expect(acks[2].error).toBe('not run: command 5 failed and this command was queued stop-on-failure');
    expect(restarted.commandTimestamp).toBe('2025-01-01T00:00:07Z');
  });

  it('adopts the environment id for a global key, and starts afresh for another environment', () => {
    const j = Journal.open(dir, 0);
    j.setEndpointId(9);
    j.finish({ seq: 3, status: 'succeeded', finishedAt: 1 });
    expect(Journal.open(dir, 0).endpointId).toBe(9);
    expect(Journal.open(dir, 9).lastSeq).toBe(3);
    const other = Journal.open(dir, 10, log);
    expect(other.state).toMatchObject({ endpointId: 10, lastSeq: 0, pendingAcks: [] });
  });

  it('sets an unreadable journal aside instead of refusing to start', () => {
    fs.writeFileSync(path.join(dir, JOURNAL_FILE), '{"endpointId": 4, "lastSe');
    const j = Journal.open(dir, 4, log);
    expect(j.lastSeq).toBe(0);
    expect(fs.readdirSync(dir).some((f) => f.startsWith(`${JOURNAL_FILE}.corrupt-`))).toBe(true);
  });
});
