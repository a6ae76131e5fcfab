import { FencedError, StoreVersionError } from '../errors';
import { MIGRATIONS, SCHEMA_VERSION, assertSchemaSupported, readSchemaVersion, runMigrations, type Migration } from './migrations';
import type { Key, ScanRange, Store, WriteOp } from './types';

const put = (collection: string, key: Key, value: Record<string, unknown>): WriteOp => ({ op: 'put', collection, key, value });
const del = (collection: string, key: Key): WriteOp => ({ op: 'delete', collection, key });

async function all(store: Store, collection: string): Promise<{ key: Key; value: Record<string, unknown> }[]> {
  const out = [];
  for await (const entry of store.scan(collection)) out.push(entry);
  return out;
}

/**
 * The behaviour every {@link Store} adapter must show. `make` returns a fresh, unopened store
 * (called once per test); `cleanup` runs after the whole suite.
 */
export function storeContract(name: string, make: () => Promise<Store>, cleanup?: () => Promise<void>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let fence: number;

    beforeEach(async () => {
      store = await make();
      await store.open();
      fence = await store.claimFence();
    });
    afterEach(async () => {
      await store.close();
    });
    if (cleanup) afterAll(cleanup);

    it('round-trips puts and deletes with number and string keys, which keep their type', async () => {
      await store.commit(fence, [put('items', 1, { n: 'one', tags: ['a'] }), put('items', '1', { s: 'one' }), put('items', 'x', { nested: { ok: true } })]);
      expect(await store.get('items', 1)).toEqual({ n: 'one', tags: ['a'] });
      expect(await store.get('items', '1')).toEqual({ s: 'one' });
      expect(await store.get('items', 'x')).toEqual({ nested: { ok: true } });
      await store.commit(fence, [del('items', 1), put('items', 'x', { replaced: 1 })]);
      expect(await store.get('items', 1)).toBeUndefined();
      expect(await store.get('items', 'x')).toEqual({ replaced: 1 });
      expect(await store.get('items', 'missing')).toBeUndefined();
      expect(await store.get('never_written', 7)).toBeUndefined();
    });

    it('scans in key order (numbers ascending, then strings) and counts', async () => {
      const keys: Key[] = ['b', 10, 'a', -5, 2.5, 'B', 300, 'aa'];
      await store.commit(fence, keys.map((k) => put('items', k, { k })));
      const entries = await all(store, 'items');
      expect(entries.map((e) => e.key)).toEqual([-5, 2.5, 10, 300, 'B', 'a', 'aa', 'b']);
      expect(entries.every((e) => e.value.k === e.key)).toBe(true);
      expect(await store.count('items')).toBe(8);
      expect(await store.count('empty')).toBe(0);
      expect(await all(store, 'empty')).toEqual([]);
    });

    it('scans collections larger than one page', async () => {
      await store.commit(fence, Array.from({ length: 600 }, (_, i) => put('many', i, { i })));
      const entries = await all(store, 'many');
      expect(entries.map((e) => e.key)).toEqual(Array.from({ length: 600 }, (_, i) => i));
      expect(await store.count('many')).toBe(600);
    });

    it('scans key ranges: bounds of one type, exclusive cursor, limit, across pages', async () => {
      const keys: Key[] = [-5, 1, 2, 3, 10, 'a', 'b:001', 'b:002', 'b:010', 'c', 'B'];
      await store.commit(fence, keys.map((k) => put('items', k, { k })));
      const range = async (r: ScanRange) => {
        const out: Key[] = [];
        for await (const { key, value } of store.scan('items', r)) {
          expect(value.k).toBe(key);
          out.push(key);
        }
        return out;
      };
      // A string prefix as [prefix + ':', prefix + ';'): how one environment's commands are read.
      expect(await range({ gte: 'b:', lt: 'b;' })).toEqual(['b:001', 'b:002', 'b:010']);
      expect(await range({ gt: 'b:001', lt: 'b;' })).toEqual(['b:002', 'b:010']);
      expect(await range({ gte: 'b:', lt: 'b;', limit: 2 })).toEqual(['b:001', 'b:002']);
      // A bounded range holds only keys of its bounds' type.
      expect(await range({ gte: 2 })).toEqual([2, 3, 10]);
      expect(await range({ lt: 3 })).toEqual([-5, 1, 2]);
      expect(await range({ gt: -5, lt: 10, limit: 2 })).toEqual([1, 2]);
      expect(await range({ lt: 'b' })).toEqual(['B', 'a']);
      expect(await range({ gte: 'a' })).toEqual(['a', 'b:001', 'b:002', 'b:010', 'c']);
      expect(await range({ limit: 3 })).toEqual([-5, 1, 2]);
      expect(await range({})).toEqual([-5, 1, 2, 3, 10, 'B', 'a', 'b:001', 'b:002', 'b:010', 'c']);
      expect(await range({ gte: 'x', lt: 'y' })).toEqual([]);

      // More than one page (the LMDB adapter reads 256 at a time) inside a range.
      await store.commit(fence, Array.from({ length: 700 }, (_, i) => put('many', `e:${String(i).padStart(4, '0')}`, { i })));
      await store.commit(fence, [put('many', 'd', { i: -1 }), put('many', 'f', { i: -1 }), put('many', 5, { i: -1 })]);
      const seen: number[] = [];
      for await (const { value } of store.scan<{ i: number }>('many', { gt: 'e:0099', lt: 'e;', limit: 600 })) seen.push(value.i);
      expect(seen).toEqual(Array.from({ length: 600 }, (_, i) => i + 100));

      for (const bad of [{ gte: 1, lt: 'b' }, { gte: 'a', gt: 'b' }, { limit: 0 }, { limit: 1.5 }, { gte: '' }] as ScanRange[]) {
        await expect(range(bad)).rejects.toThrow(/range|key/i);
      }
    });

    it('applies a commit all or nothing: an invalid last op writes nothing', async () => {
      const bad = { op: 'put', collection: 'Bad-Name', key: 1, value: {} } as WriteOp;
      await expect(store.commit(fence, [put('items', 1, { a: 1 }), put('other', 2, { b: 2 }), bad])).rejects.toThrow(/collection/);
      await expect(store.commit(fence, [put('items', 1, { a: 1 }), put('items', 2, [] as unknown as Record<string, unknown>)])).rejects.toThrow();
      expect(await store.count('items')).toBe(0);
      expect(await store.count('other')).toBe(0);
    });

    it('fences: tokens increase, and an old token commits nothing', async () => {
      expect(await store.readFence()).toBe(fence);
      const next = await store.claimFence();
      expect(next).toBe(fence + 1);
      expect(await store.readFence()).toBe(next);
      await expect(store.commit(fence, [put('items', 1, { stale: true })])).rejects.toBeInstanceOf(FencedError);
      expect(await store.get('items', 1)).toBeUndefined();
      await store.commit(next, [put('items', 1, { fresh: true })]);
      expect(await store.get('items', 1)).toEqual({ fresh: true });
    });

    it('serialises concurrent fence claims and commits', async () => {
      const tokens = await Promise.all(Array.from({ length: 10 }, () => store.claimFence()));
      expect([...tokens].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => fence + 1 + i));
      const results = await Promise.allSettled(tokens.map((t) => store.commit(t, [put('items', t, { t })])));
      const ok = tokens.filter((_, i) => results[i].status === 'fulfilled');
      expect(ok).toEqual([fence + 10]);
      expect((await all(store, 'items')).map((e) => e.key)).toEqual([fence + 10]);
    });

    it('refuses to write the fence through commit', async () => {
      await expect(store.commit(fence, [put('_meta', 'fence', { value: 999 })])).rejects.toThrow(/fence/);
      await expect(store.commit(fence, [del('_meta', 'fence')])).rejects.toThrow(/fence/);
      expect(await store.readFence()).toBe(fence);
      await store.commit(fence, [put('_meta', 'note', { value: 'other _meta keys are fine' })]);
      expect(await store.get('_meta', 'note')).toEqual({ value: 'other _meta keys are fine' });
    });

    it('returns copies the caller may mutate', async () => {
      const value = { list: [1, 2], inner: { a: 1 } };
      await store.commit(fence, [put('items', 'k', value)]);
      value.inner.a = 99;
      const first = await store.get<typeof value>('items', 'k');
      first!.list.push(3);
      first!.inner.a = 42;
      expect(await store.get('items', 'k')).toEqual({ list: [1, 2], inner: { a: 1 } });
      for await (const { value: v } of store.scan<typeof value>('items')) v.list.length = 0;
      expect(await store.get('items', 'k')).toEqual({ list: [1, 2], inner: { a: 1 } });
    });

    it('rejects invalid collection names and keys', async () => {
      for (const bad of ['', 'Items', 'a-b', '1abc', 'a.b', '../x', 'x'.repeat(65)]) {
        await expect(store.get(bad, 1)).rejects.toThrow(/collection/);
        await expect(store.count(bad)).rejects.toThrow(/collection/);
        await expect(all(store, bad)).rejects.toThrow(/collection/);
        await expect(store.commit(fence, [put(bad, 1, {})])).rejects.toThrow(/collection/);
      }
      for (const bad of ['', NaN, Infinity, 'k'.repeat(501), {}] as unknown as Key[]) {
        await expect(store.commit(fence, [put('items', bad, {})])).rejects.toThrow(/key/i);
      }
      await expect(store.commit(fence, [put('items', 1, { _id: 'mine' })])).rejects.toThrow(/_id/);
    });

    it('rewrites a thousand small documents in one commit (a heartbeat flush)', async () => {
      const ids = Array.from({ length: 1000 }, (_, i) => i + 1);
      await store.commit(fence, ids.map((id) => put('checkins', id, { at: 1_700_000_000 })));
      await store.commit(fence, ids.map((id) => put('checkins', id, { at: 1_700_000_005 + (id % 7) })));
      await store.commit(fence, [del('checkins', 500), put('checkins', 1001, { at: 1 })]);
      const entries = await all(store, 'checkins');
      expect(entries).toHaveLength(1000);
      expect(entries.map((e) => e.key)).toEqual([...ids.filter((id) => id !== 500), 1001]);
      expect(entries.slice(0, 3).map((e) => e.value)).toEqual([{ at: 1_700_000_006 }, { at: 1_700_000_007 }, { at: 1_700_000_008 }]);
      expect(await store.get('checkins', 500)).toBeUndefined();
    });

    it('keeps data and fence across close and reopen', async () => {
      await store.commit(fence, [put('items', 1, { kept: true }), put('items', 'two', { kept: 2 })]);
      await store.close();
      await store.open();
      await store.open(); // idempotent
      expect(await store.get('items', 1)).toEqual({ kept: true });
      expect(await store.count('items')).toBe(2);
      expect(await store.readFence()).toBe(fence);
    });

    describe('migrations', () => {
      it('brings a fresh store to SCHEMA_VERSION, then does nothing', async () => {
        expect(await readSchemaVersion(store)).toBe(0);
        expect(await runMigrations(store, fence)).toEqual({ from: 0, to: SCHEMA_VERSION });
        expect(await readSchemaVersion(store)).toBe(SCHEMA_VERSION);
        expect(await runMigrations(store, fence)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
      });

      it('refuses a store written by a newer schema, naming both versions', async () => {
        const newer = SCHEMA_VERSION + 1;
        await store.commit(fence, [put('_meta', 'schemaVersion', { value: newer })]);
        const err = await assertSchemaSupported(store).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreVersionError);
        expect((err as Error).message).toContain(`schema version ${newer}`);
        expect((err as Error).message).toContain(`supports (${SCHEMA_VERSION})`);
        await expect(runMigrations(store, fence)).rejects.toBeInstanceOf(StoreVersionError);
      });

      it('runs a custom migration list in version order exactly once', async () => {
        const ran: number[] = [];
        const step = (version: number, returnOps: boolean): Migration => ({
          version,
          description: `step ${version}`,
          up: async (s, f) => {
            ran.push(version);
            const op = put('steps', version, { version });
            if (returnOps) return [op];
            await s.commit(f, [op]);
          },
        });
        const list = [step(3, true), step(1, false), step(2, true)];
        expect(await runMigrations(store, fence, list, 3)).toEqual({ from: 0, to: 3 });
        expect(ran).toEqual([1, 2, 3]);
        expect((await all(store, 'steps')).map((e) => e.key)).toEqual([1, 2, 3]);
        expect(await readSchemaVersion(store)).toBe(3);
        expect(await runMigrations(store, fence, list, 3)).toEqual({ from: 3, to: 3 });
        expect(ran).toEqual([1, 2, 3]);
      });

      it('version 2 moves last check-ins out of the environment documents, resuming where it stopped', async () => {
        // A version-1 store whose environments carry their last check-in (0: never checked in).
        await runMigrations(store, fence, MIGRATIONS, 1);
        const envs = Array.from({ length: 1203 }, (_, i) => ({ Id: i + 1, Name: `e${i + 1}`, LastCheckInDate: i % 3 ? 1_700_000_000 + i : 0 }));
        // Environment 2 was moved by an earlier, interrupted run; its check-in document stays as it is.
        await store.commit(fence, [
          ...envs.map((e) => put('environments', e.Id, e.Id === 2 ? { Id: 2, Name: 'e2' } : e)),
          put('checkins', 2, { at: 1_700_000_999 }),
        ]);
        expect(await runMigrations(store, fence)).toEqual({ from: 1, to: SCHEMA_VERSION });
        const environments = await all(store, 'environments');
        expect(environments.map((e) => e.value)).toEqual(envs.map(({ Id, Name }) => ({ Id, Name })));
        const expected = envs.filter((e) => e.LastCheckInDate > 0).map((e) => ({ key: e.Id, value: { at: e.Id === 2 ? 1_700_000_999 : e.LastCheckInDate } }));
        expect(await all(store, 'checkins')).toEqual(expected);
      });

      it('does not record a version when the migration is fenced', async () => {
        await store.claimFence();
        await expect(runMigrations(store, fence)).rejects.toBeInstanceOf(FencedError);
        expect(await readSchemaVersion(store)).toBe(0);
      });
    });
  });
}
