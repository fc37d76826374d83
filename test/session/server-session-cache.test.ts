/** The per-replica reuse of server sessions: one window, bounded, and no fill from a read a logout overtook. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  serverSessionReuseMs,
  ServerSessionCache,
} from '../../src/session/server-session-cache.ts';
import { parseTicket, type LoadedServerSession } from '../../src/session/server-session-store.ts';

const ticket = `${'i'.repeat(22)}.${Buffer.alloc(32, 7).toString('base64url')}`;

function loaded(sub: string): LoadedServerSession {
  return {
    handle: parseTicket(ticket)!,
    session: {
      v: 1,
      id: `id-${sub}`,
      sub,
      claims: { sub },
      tokens: { accessToken: `access-${sub}`, expiresAt: 0 },
      createdAt: 0,
      lastSeenAt: 0,
    },
  };
}

function clock() {
  let t = 1_000_000;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

describe('server session cache', () => {
  it('reuses an entry for one window, the same as the revocation check trusts a lookup', () => {
    assert.equal(serverSessionReuseMs, 250);
    const c = clock();
    const cache = new ServerSessionCache(10, c.now);
    const alice = loaded('alice');
    cache.set('k', alice, cache.stamp());
    c.advance(serverSessionReuseMs - 1);
    assert.equal(cache.get('k'), alice);
    c.advance(1);
    assert.equal(cache.get('k'), undefined, 'never past the window');
    assert.equal(cache.size, 0);
  });

  it('does not keep a read that an invalidation overtook', () => {
    const c = clock();
    const cache = new ServerSessionCache(10, c.now);
    const stamp = cache.stamp(); // a store read starts…
    cache.invalidate('k'); // …a logout here deletes the record meanwhile…
    cache.set('k', loaded('alice'), stamp); // …and the read returns the record it saw before
    assert.equal(cache.get('k'), undefined);
    const allStamp = cache.stamp();
    cache.invalidateAll();
    cache.set('other', loaded('bob'), allStamp);
    assert.equal(cache.get('other'), undefined);
    cache.set('other', loaded('bob'), cache.stamp());
    assert.equal(cache.get('other')?.session.sub, 'bob', 'a read started after it is kept');
  });

  it('replace stands over a read in flight; a plain delete does not stop other reads', () => {
    const c = clock();
    const cache = new ServerSessionCache(10, c.now);
    const stamp = cache.stamp();
    cache.replace('k', loaded('new'));
    cache.set('k', loaded('old'), stamp);
    assert.equal(cache.get('k')?.session.sub, 'new');
    const next = cache.stamp();
    cache.delete('unknown-ticket');
    cache.set('j', loaded('bob'), next);
    assert.equal(cache.get('j')?.session.sub, 'bob');
  });

  it('holds at most maxEntries, evicting the least recently used', () => {
    const c = clock();
    const cache = new ServerSessionCache(3, c.now);
    for (const key of ['a', 'b', 'c']) cache.set(key, loaded(key), cache.stamp());
    assert.ok(cache.get('a')); // a is now the most recent
    cache.set('d', loaded('d'), cache.stamp());
    assert.equal(cache.size, 3);
    assert.equal(cache.get('b'), undefined);
    assert.ok(cache.get('a'));
    assert.ok(cache.get('d'));
    const none = new ServerSessionCache(0, c.now);
    none.set('a', loaded('a'), none.stamp());
    assert.equal(none.size, 0);
    assert.throws(() => new ServerSessionCache(-1), RangeError);
  });

  it('drops expired entries as new ones arrive, so it holds the last window, not all since start', () => {
    const c = clock();
    const cache = new ServerSessionCache(100_000, c.now);
    for (let i = 0; i < 1_000; i++) {
      cache.set(`old-${i}`, loaded('x'), cache.stamp());
      c.advance(1);
    }
    c.advance(serverSessionReuseMs);
    cache.set('new', loaded('y'), cache.stamp());
    assert.equal(cache.size, 1);
    // Kept in use, an entry outlives none of its window.
    cache.set('hot', loaded('z'), cache.stamp());
    c.advance(serverSessionReuseMs - 1);
    assert.ok(cache.get('hot'));
    c.advance(1);
    assert.equal(cache.get('hot'), undefined);
  });
});
