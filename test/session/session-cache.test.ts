/** The decoded-session cache: bounded LRU, digest keys, expiry no later than the session's. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiringLru } from '../../src/expiring-lru.ts';

describe('session cache', () => {
  it('an entry expires at its expiresAt without any timer', () => {
    let t = 1_000;
    const cache = new ExpiringLru<string>({ maxEntries: 100_000, now: () => t });
    cache.set('k', 'session', 2_000);
    t = 1_999;
    assert.equal(cache.get('k'), 'session');
    t = 2_000;
    assert.equal(cache.get('k'), undefined);
    assert.equal(cache.size, 0);
    cache.set('dead', 'session', 2_000);
    assert.equal(cache.size, 0, 'an already expired entry is not stored');
  });

  it('evicts the least recently used when full', () => {
    const cache = new ExpiringLru<number>({ maxEntries: 3, now: Date.now });
    const far = Date.now() + 60_000;
    cache.set('a', 1, far);
    cache.set('b', 2, far);
    cache.set('c', 3, far);
    assert.equal(cache.get('a'), 1); // a is now the most recent
    cache.set('d', 4, far);
    assert.equal(cache.size, 3);
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a'), 1);
    assert.equal(cache.get('d'), 4);
  });

  it('delete forgets an entry (logout)', () => {
    const cache = new ExpiringLru<number>({ maxEntries: 100_000, now: Date.now });
    cache.set('a', 1, Date.now() + 60_000);
    assert.equal(cache.delete('a'), true);
    assert.equal(cache.get('a'), undefined);
  });
});
