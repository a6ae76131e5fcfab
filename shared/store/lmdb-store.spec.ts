import { fork, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FencedError } from '../errors';
import { LmdbStore } from './lmdb-store';
import { storeContract } from './store.contract';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capstan-store-'));
  dirs.push(dir);
  return dir;
}
async function removeDirs(): Promise<void> {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

storeContract('LmdbStore', async () => new LmdbStore({ path: path.join(tempDir(), 'main.lmdb') }), removeDirs);

// Plain JS (a forked child is not transformed by jest): opens the same environment as LmdbStore
// does, then claims the fence `count` times in write transactions, as a second replica would.
// Forked (with IPC) it waits for a go and reports its tokens by message; spawned, it prints them.
const CHILD = `
const { open } = require(${JSON.stringify(require.resolve('lmdb'))});
const [dbPath, count] = [process.argv[2], Number(process.argv[3])];
const opts = { cache: false, compression: false, encoding: 'msgpack' };
const root = open({ path: dbPath, noSubdir: false, maxDbs: 64, ...opts });
const meta = root.openDB('_meta', opts);
const items = root.openDB('items', opts);
async function run() {
  const tokens = [];
  for (let i = 0; i < count; i++) {
    tokens.push(meta.transactionSync(() => {
      const next = ((meta.get('fence') || {}).value || 0) + 1;
      meta.putSync('fence', { value: next });
      items.putSync('child-' + next, { token: next, pid: process.pid });
      return next;
    }));
  }
  await root.close();
  return tokens;
}
if (process.send) {
  process.once('message', async () => { const tokens = await run(); process.send(tokens, () => process.exit(0)); });
  process.send('ready');
} else run().then((tokens) => console.log(JSON.stringify(tokens)));
`;

describe('LmdbStore specifics', () => {
  afterAll(removeDirs);

  it('rolls back a commit whose op fails inside the write transaction', async () => {
    const store = new LmdbStore({ path: path.join(tempDir(), 'main.lmdb') });
    await store.open();
    try {
      const fence = await store.claimFence();
      // Passes validation but msgpack cannot encode it: the failure happens after the first put
      // ran in the engine, which only a child transaction undoes.
      const unencodable = { big: 2n ** 70n } as unknown as Record<string, unknown>;
      const ops = [{ op: 'put', collection: 'items', key: 1, value: { ok: true } }, { op: 'put', collection: 'items', key: 2, value: unencodable }] as const;
      await expect(store.commit(fence, [...ops])).rejects.toThrow(/too large/);
      expect(await store.count('items')).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('fences a replica in another process and sees its writes', async () => {
    const dir = tempDir();
    const dbPath = path.join(dir, 'main.lmdb');
    const script = path.join(dir, 'child.js');
    fs.writeFileSync(script, CHILD);
    const store = new LmdbStore({ path: dbPath });
    await store.open();
    try {
      const mine = await store.claimFence();
      const child = fork(script, [dbPath, '50'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const childTokens = new Promise<number[]>((resolve, reject) => {
        child.on('message', (msg) => (msg === 'ready' ? child.send('go') : resolve(msg as number[])));
        child.once('exit', (code) => reject(new Error(`child exited with ${code} before reporting`)));
      });
      // Claim from this process while the child claims from its own: LMDB's shared write lock
      // must serialise them into one gap-free sequence.
      const ours: number[] = [];
      while (ours.length < 50) ours.push(await store.claimFence());
      const theirs = await childTokens;
      expect(await exited).toBe(0);

      const everyToken = [mine, ...ours, ...theirs].sort((a, b) => a - b);
      expect(everyToken).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
      const latest = await store.readFence();
      expect(latest).toBe(101);

      const childLast = Math.max(...theirs);
      expect(await store.get('items', `child-${childLast}`)).toEqual({ token: childLast, pid: child.pid });
      await expect(store.commit(mine, [{ op: 'put', collection: 'items', key: 'late', value: { stale: true } }])).rejects.toBeInstanceOf(FencedError);
      expect(await store.get('items', 'late')).toBeUndefined();
      await store.commit(latest, [{ op: 'put', collection: 'items', key: 'late', value: { stale: false } }]);
      expect(await store.get('items', 'late')).toEqual({ stale: false });

      // spawnSync blocks this event-loop turn, in which lmdb-js would keep reusing the read
      // snapshot it just took: the next read must still see the other process's commit.
      expect(await store.readFence()).toBe(101);
      const sync = spawnSync(process.execPath, [script, dbPath, '1'], { encoding: 'utf8' });
      expect(sync.status).toBe(0);
      expect(JSON.parse(sync.stdout)).toEqual([102]);
      expect(await store.readFence()).toBe(102);
      expect(await store.get('items', 'child-102')).toMatchObject({ token: 102 });
      await expect(store.commit(latest, [])).rejects.toBeInstanceOf(FencedError);
    } finally {
      await store.close();
    }
  }, 30_000);
});
