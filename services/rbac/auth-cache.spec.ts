import { AuthCache } from './auth-cache';

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('AuthCache', () => {
  it('serves an entry until its TTL, then forgets it', () => {
    const clock = fakeClock();
    const cache = new AuthCache<string>({ ttlMs: 30_000, now: clock.now });
    cache.set('a', 'alice', { userId: 1 });
    clock.advance(29_999);
    expect(cache.get('a')).toBe('alice');
    clock.advance(1);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not refresh the TTL on a hit', () => {
    const clock = fakeClock();
    const cache = new AuthCache<string>({ ttlMs: 1000, now: clock.now });
    cache.set('a', 'alice', { userId: 1 });
    clock.advance(900);
    expect(cache.get('a')).toBe('alice');
    clock.advance(200);
    expect(cache.get('a')).toBeUndefined();
  });

  it('never keeps an entry past notAfter (a JWT expiring sooner than the TTL)', () => {
    const clock = fakeClock();
    const cache = new AuthCache<string>({ ttlMs: 30_000, now: clock.now });
    cache.set('jwt', 'alice', { userId: 1, jti: 'j1' }, { notAfter: clock.now() + 5_000 });
    clock.advance(5_000);
    expect(cache.get('jwt')).toBeUndefined();
    expect(cache.set('old', 'x', { userId: 1 }, { notAfter: clock.now() - 1 })).toBe(false);
    expect(cache.get('old')).toBeUndefined();
  });

  it('evicts the least recently used entry beyond its bound', () => {
    const cache = new AuthCache<number>({ maxEntries: 3 });
    cache.set('a', 1, { userId: 1 });
    cache.set('b', 2, { userId: 2 });
    cache.set('c', 3, { userId: 3 });
    expect(cache.get('a')).toBe(1); // a is now the most recently used; b the least
    cache.set('d', 4, { userId: 4 });
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
    expect(cache.get('d')).toBe(4);
  });

  it('stays bounded under many inserts', () => {
    const cache = new AuthCache<number>({ maxEntries: 100 });
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i, { userId: i + 1 });
    expect(cache.size).toBe(100);
    expect(cache.get('k999')).toBe(999);
    expect(cache.get('k899')).toBeUndefined();
  });

  it('drops by session, API key and user', () => {
    const cache = new AuthCache<string>();
    cache.set('s1', 'alice/jwt1', { userId: 1, jti: 'jti-1' });
    cache.set('s2', 'alice/jwt2', { userId: 1, jti: 'jti-2' });
    cache.set('k1', 'alice/key', { userId: 1, apiKeyId: 7 });
    cache.set('s3', 'bob/jwt', { userId: 2, jti: 'jti-3' });
    cache.set('k2', 'bob/key', { userId: 2, apiKeyId: 8 });

    expect(cache.dropJti('jti-1')).toBe(1);
    expect(cache.get('s1')).toBeUndefined();
    expect(cache.get('s2')).toBe('alice/jwt2');

    expect(cache.dropApiKey(8)).toBe(1);
    expect(cache.get('k2')).toBeUndefined();
    expect(cache.get('s3')).toBe('bob/jwt');

    expect(cache.dropUser(1)).toBe(2);
    expect(cache.get('s2')).toBeUndefined();
    expect(cache.get('k1')).toBeUndefined();
    expect(cache.get('s3')).toBe('bob/jwt');
  });

  it('refuses a result resolved before a revocation that happened meanwhile', () => {
    const cache = new AuthCache<string>();
    const before = cache.generation;
    // ...the session is looked up, then logout lands while the lookup is in flight...
    cache.dropJti('jti-1');
    expect(cache.set('s1', 'alice', { userId: 1, jti: 'jti-1' }, { generation: before })).toBe(false);
    expect(cache.get('s1')).toBeUndefined();
    expect(cache.set('s1', 'alice', { userId: 1, jti: 'jti-1' }, { generation: cache.generation })).toBe(true);
    expect(cache.get('s1')).toBe('alice');
  });
});
