import { HeartbeatFlusher } from './flusher';

describe('HeartbeatFlusher', () => {
  it('sends the latest check-in per environment in one batch, and nothing when idle', async () => {
    const sent: { id: number; at: number }[][] = [];
    const f = new HeartbeatFlusher(async (items) => void sent.push(items), undefined, 60_000);
    f.mark(1, 100);
    f.mark(1, 105);
    f.mark(1, 103);
    f.mark(2, 100);
    f.forget(2);
    await f.flush();
    await f.flush();
    expect(sent).toEqual([[{ id: 1, at: 105 }]]);
  });

  it('keeps a failed batch for the next round without losing newer check-ins', async () => {
    let fail = true;
    const sent: { id: number; at: number }[][] = [];
    const f = new HeartbeatFlusher(async (items) => {
      if (fail) throw new Error('no leader');
      sent.push(items);
    }, { warn: () => undefined, debug: () => undefined }, 60_000);
    f.mark(1, 100);
    f.mark(2, 100);
    await f.flush();
    expect(f.size).toBe(2);
    f.mark(1, 110);
    fail = false;
    await f.flush();
    expect(sent).toEqual([[{ id: 1, at: 110 }, { id: 2, at: 100 }]]);
    expect(f.size).toBe(0);
  });
});
