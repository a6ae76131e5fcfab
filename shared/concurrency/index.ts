/**
 * Runs `fn` over `items` with at most `concurrency` calls in flight, in item order; resolves when
 * all are done, rejects with the first failure (the calls already started still finish).
 */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}
