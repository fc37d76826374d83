import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiringLru } from '../src/expiring-lru.ts';

describe('ExpiringLru', () => {
  it('forgets expired and least recently used entries', () => {
    let now = 1_000;
    const lru = new ExpiringLru<string>({ maxEntries: 2, now: () => now });
    lru.set('a', 'A', 2_000);
    lru.set('b', 'B', 3_000);
    assert.equal(lru.get('a'), 'A'); // now the most recently used
    lru.set('c', 'C', 3_000);
    assert.equal(lru.get('b'), undefined, 'b was the least recently used');
    now = 2_000;
    assert.equal(lru.get('a'), undefined, 'a expired');
  });

  it('drops expired entries at the old end when storing, so short-lived ones do not pile up', () => {
    let now = 0;
    const lru = new ExpiringLru<number>({ maxEntries: 1_000, now: () => now });
    for (let i = 0; i < 100; i++) lru.set(`old-${i}`, i, 250);
    assert.equal(lru.size, 100);
    now = 300;
    lru.set('new', 1, 550);
    assert.equal(lru.size, 1, 'only the live entry is held');
  });

  it('sweeps the old end once per clock tick, and never hands out an entry that expired since', () => {
    let now = 0;
    const lru = new ExpiringLru<number>({ maxEntries: 1_000, now: () => now });
    lru.set('short', 1, 10);
    now = 10;
    lru.set('a', 2, 500);
    assert.equal(lru.size, 1, 'the first store of a tick sweeps');
    lru.set('b', 3, 11);
    now = 11;
    lru.set('c', 4, 500);
    // Same tick: `b`, expired now, waits for the next sweep but is never returned.
    lru.set('d', 5, 500);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.size, 3);
    now = 20;
    lru.set('e', 6, 500);
    assert.deepEqual(
      ['a', 'c', 'd', 'e'].map((k) => lru.get(k)),
      [2, 4, 5, 6],
    );
  });

  it('moves a read entry to the young end only from the older half, and never evicts one read often enough', () => {
    const lru = new ExpiringLru<string>({ maxEntries: 4, now: () => 0 });
    for (const key of ['a', 'b', 'c', 'd']) lru.set(key, key.toUpperCase(), 1_000);
    assert.equal(lru.get('d'), 'D', 'among the younger half: stays where it is');
    assert.equal(lru.get('a'), 'A', 'from the older half: moved to the young end');
    lru.set('e', 'E', 1_000);
    assert.equal(lru.get('b'), undefined, 'b was the oldest');
    assert.deepEqual(
      ['a', 'c', 'd', 'e'].map((k) => lru.get(k)),
      ['A', 'C', 'D', 'E'],
    );

    // Read once every maxEntries / 2 insertions, an entry outlives any number of others.
    const big = new ExpiringLru<number>({ maxEntries: 100, now: () => 0 });
    big.set('hot', 1, 1_000);
    for (let i = 0; i < 10_000; i++) {
      big.set(`cold-${i}`, i, 1_000);
      if (i % 50 === 0) assert.equal(big.get('hot'), 1, `evicted after ${i} insertions`);
    }
    assert.equal(big.size, 100);
  });
});
