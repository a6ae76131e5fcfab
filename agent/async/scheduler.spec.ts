import { PUSHED_COMMAND_MS, Scheduler, type Flags } from './scheduler';

describe('async scheduler on the push channel', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('stops the ping timer and slows the command timer while pushed, keeps the snapshot timer, and restores them after', async () => {
    const sent: Flags[] = [];
    const s = new Scheduler(async (f) => {
      sent.push(f);
      return true;
    }, () => undefined, { coalesceMs: 10, initialIntervalMs: 1000 });
    s.setIntervals({ pingMs: 1000, snapshotMs: 4000, commandMs: 2000 });
    s.start({});
    await jest.advanceTimersByTimeAsync(50);
    sent.length = 0;

    s.setPushed(true);
    await jest.advanceTimersByTimeAsync(12_000);
    // Only the snapshot timer (every 4 s) fired.
    expect(sent).toEqual([{ snapshot: true }, { snapshot: true }, { snapshot: true }]);
    sent.length = 0;
    await jest.advanceTimersByTimeAsync(PUSHED_COMMAND_MS);
    expect(sent.filter((f) => f.command)).toHaveLength(1);
    expect(s.current).toEqual({ pingMs: 1000, snapshotMs: 4000, commandMs: 2000 });

    s.setPushed(false);
    sent.length = 0;
    await jest.advanceTimersByTimeAsync(2050);
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.some((f) => f.command)).toBe(true);
    await s.stop();
  });
});
