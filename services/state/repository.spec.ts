import fs from 'node:fs';
import path from 'node:path';
import { FencedError } from '../../shared/errors';
import { LmdbStore, type WriteOp } from '../../shared/store';
import { tempDataDir } from '../../test/helpers/ids';
import { Repository } from './repository';

const put = (key: number, at: number): WriteOp => ({ op: 'put', collection: 'checkins', key, value: { at } });

describe('Repository number key-spaces (on a real LMDB store)', () => {
  let dir: string;
  let store: LmdbStore;
  beforeEach(async () => {
    dir = tempDataDir('capstan-repo-');
    store = new LmdbStore({ path: path.join(dir, 'main.lmdb') });
    await store.open();
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function leader(): Promise<{ repo: Repository; fenced: Error[] }> {
    const fenced: Error[] = [];
    const repo = new Repository(store, await store.claimFence(), (err) => fenced.push(err));
    repo.defineNumbers('checkins', 'at');
    await repo.load(['checkins', 'environments']);
    return { repo, fenced };
  }

  it('loads, applies and persists `{ at }` documents as bare numbers', async () => {
    const first = await leader();
    await first.repo.commit([put(1, 100), put(2, 200), put(3, 300)]);
    await first.repo.commit([put(2, 250), { op: 'delete', collection: 'checkins', key: 3 }]);
    expect([1, 2, 3].map((id) => first.repo.number('checkins', id))).toEqual([100, 250, undefined]);
    expect(await store.get('checkins', 2)).toEqual({ at: 250 });
    expect(await store.get('checkins', 3)).toBeUndefined();
    expect(() => first.repo.number('environments', 1)).toThrow(/holds no numbers/);

    // A new leader reads them back from the store.
    const next = await leader();
    expect([1, 2, 3].map((id) => next.repo.number('checkins', id))).toEqual([100, 250, undefined]);
  });

  it('applies nothing to memory or disk when the commit is fenced', async () => {
    const old = await leader();
    await old.repo.commit([put(1, 100)]);
    const successor = await leader();
    await expect(old.repo.commit([put(1, 999), put(2, 999)])).rejects.toBeInstanceOf(FencedError);
    expect(old.fenced).toHaveLength(1);
    expect(old.repo.number('checkins', 1)).toBe(100);
    expect(old.repo.number('checkins', 2)).toBeUndefined();
    expect(await store.get('checkins', 1)).toEqual({ at: 100 });
    expect(await store.get('checkins', 2)).toBeUndefined();
    // Once fenced, it stays so without asking the store again; the successor writes.
    await expect(old.repo.commit([put(3, 1)])).rejects.toBeInstanceOf(FencedError);
    await successor.repo.commit([put(1, 120)]);
    expect(await store.get('checkins', 1)).toEqual({ at: 120 });
  });
});
