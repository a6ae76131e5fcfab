import { fork, spawnSync, type ChildProcess } from 'node:child_process';
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

// Plain JS too, but it runs LmdbStore itself rather than a copy of its options, so the test
// follows whatever options LmdbStore opens lmdb-js with: a require hook compiles the .ts sources
// with @swc/core, as jest's transform does. It claims the fence once, reports it, then commits
// with that fence in a tight loop (each commit is a child transaction plus a flush) until killed.
const WRITER = `
const fs = require('node:fs');
const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), { filename, jsc: { parser: { syntax: 'typescript' }, target: 'es2023' }, module: { type: 'commonjs' } });
  module._compile(code, filename);
};
const { LmdbStore } = require(${JSON.stringify(path.join(__dirname, 'lmdb-store.ts'))});
const [dbPath, tag] = process.argv.slice(2);
async function run() {
  const store = new LmdbStore({ path: dbPath });
  await store.open();
  const fence = await store.claimFence();
  process.send({ fence });
  for (let i = 0; ; i++) await store.commit(fence, [{ op: 'put', collection: 'items', key: tag + '-' + i, value: { i, pid: process.pid } }]);
}
run().catch((err) => { console.error(err); process.exit(1); });
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

  // Failover on a shared data dir: the leader dies (SIGKILL) and a replica that was only reading
  // must be able to take over and write. With lmdb-js's default overlappingSync, the survivor's
  // first write after a writer was killed mid-commit fails with MDB_PANIC ("Update of meta page
  // failed or environment had fatal error") and the environment stays unusable. A kill lands in
  // that window about 60% of the time (lmdb 3.5, Linux), so the test fails over several times.
  it('keeps working in a process that survives writers killed mid-commit', async () => {
    const ROUNDS = 6;
    const dir = tempDir();
    const dbPath = path.join(dir, 'main.lmdb');
    const script = path.join(dir, 'writer.js');
    fs.writeFileSync(script, WRITER);
    const store = new LmdbStore({ path: dbPath });
    await store.open();
    const children: ChildProcess[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const tag = `w${round}`;
        const before = await store.count('items');
        const child = fork(script, [dbPath, tag], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
        const childFence = await new Promise<number>((resolve, reject) => {
          child.once('message', (msg) => resolve((msg as { fence: number }).fence));
          child.once('exit', (code) => reject(new Error(`writer exited with ${code} before claiming`)));
        });
        expect(await store.readFence()).toBe(childFence);

        // Only read while the child writes, as a standby replica does.
        let seen = 0;
        const until = Date.now() + 500;
        while (Date.now() < until) {
          seen = (await store.count('items')) - before;
          if (seen > 0) expect(await store.get('items', `${tag}-${seen - 1}`)).toEqual({ i: seen - 1, pid: child.pid });
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        // Still in its loop (not crashed), and it has committed meanwhile.
        expect({ code: child.exitCode, signal: child.signalCode }).toEqual({ code: null, signal: null });
        expect(seen).toBeGreaterThan(10);
        child.kill('SIGKILL');
        expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });

        // Take over: claim the fence and commit from this process.
        const mine = await store.claimFence();
        expect(mine).toBe(childFence + 1);
        await store.commit(mine, [{ op: 'put', collection: 'items', key: `survivor-${round}`, value: { fence: mine } }]);
        await store.commit(mine, [{ op: 'put', collection: 'items', key: `survivor-${round}b`, value: { fence: mine } }]);
        expect(await store.get('items', `survivor-${round}`)).toEqual({ fence: mine });
        expect(await store.get('items', `survivor-${round}b`)).toEqual({ fence: mine });
        // What the child committed before this process last looked is still there.
        expect(await store.get('items', `${tag}-0`)).toEqual({ i: 0, pid: child.pid });
        expect(await store.get('items', `${tag}-${seen - 1}`)).toEqual({ i: seen - 1, pid: child.pid });
        expect(await store.count('items')).toBeGreaterThanOrEqual(before + seen + 2);
        await expect(store.commit(childFence, [])).rejects.toBeInstanceOf(FencedError);
      }
      expect(await store.readFence()).toBe(2 * ROUNDS);
      for (let round = 0; round < ROUNDS; round++) expect(await store.get('items', `survivor-${round}`)).toEqual({ fence: 2 * round + 2 });
    } finally {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // After MDB_PANIC lmdb-js never settles `flushed`, so close() would hang and turn the
      // failure into a timeout: give it a bounded time.
      await Promise.race([store.close(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    }
  }, 30_000);
});
