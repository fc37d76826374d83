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
});
