import type { CommandUpdate, UpdateCommandsParams, UpdateCommandsResult } from '../../shared/contracts';
import { LedgerWriter } from './ledger-writer';

const log = { warn: jest.fn() };
const upd = (seq: number, status: CommandUpdate['status'], id = 1): CommandUpdate => ({ id, seq, status, at: 1 });

function writer(persist: (p: UpdateCommandsParams) => Promise<UpdateCommandsResult>, onFinal = jest.fn(async () => undefined)) {
  return { w: new LedgerWriter({ persist, onFinal, log, windowMs: 20 }), onFinal };
}

describe('LedgerWriter', () => {
  it('coalesces changes from many callers into one state call, keeping the furthest status per command', async () => {
    const calls: UpdateCommandsParams[] = [];
    const { w, onFinal } = writer(async (p) => {
      calls.push(p);
      return { updated: p.updates.length, final: p.updates.filter((u) => u.status !== 'delivered').map((u) => ({ id: u.id, seq: u.seq })) };
    });
    const a = w.submit([upd(1, 'delivered'), upd(2, 'delivered')]);
    const b = w.submit([upd(1, 'succeeded'), upd(2, 'delivered', 2)]);
    // A late "delivered" never replaces a result.
    const c = w.submit([upd(1, 'delivered')], [{ id: 1, seq: 5, at: 2 }]);
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    expect(calls).toHaveLength(1);
    expect(calls[0].updates.map((u) => `${u.id}:${u.seq}:${u.status}`)).toEqual(['1:1:succeeded', '1:2:delivered', '2:2:delivered']);
    expect(calls[0].watermarks).toEqual([{ id: 1, seq: 5, at: 2 }]);
    for (const r of [ra, rb, rc]) expect(r.final).toEqual([{ id: 1, seq: 1 }]);
    expect(onFinal).toHaveBeenCalledWith([{ id: 1, seq: 1 }]);
  });

  it('rejects the waiters of a failed flush and retries its changes with the next one', async () => {
    let fail = true;
    const seen: string[][] = [];
    const { w } = writer(async (p) => {
      seen.push(p.updates.map((u) => `${u.seq}:${u.status}`));
      if (fail) throw new Error('no leader');
      return { updated: p.updates.length, final: [] };
    });
    await expect(w.submit([upd(1, 'delivered')])).rejects.toThrow('no leader');
    fail = false;
    await w.submit([upd(2, 'failed')]);
    expect(seen[seen.length - 1].sort()).toEqual(['1:delivered', '2:failed']);
    await w.close();
  });

  it('splits large flushes into parts of at most 1000 updates', async () => {
    const sizes: number[] = [];
    const { w } = writer(async (p) => {
      sizes.push(p.updates.length);
      return { updated: p.updates.length, final: [] };
    });
    const r = await w.submit(Array.from({ length: 2500 }, (_, i) => upd(i + 1, 'delivered')));
    expect(sizes).toEqual([1000, 1000, 500]);
    expect(r.updated).toBe(2500);
  });
});
