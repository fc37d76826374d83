/** The memory backend: the store contract, plus bounds, sweeping and its injected clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { runStoreContract } from './store-contract.ts';

runStoreContract('memory', () => {
  const backend = createMemoryBackend();
  return Promise.resolve({ backend, close: () => backend.close() });
});

function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

describe('memory backend', () => {
  it('enforces TTLs against the injected clock, to the millisecond', async () => {
    const clock = manualClock();
    const b = createMemoryBackend({ now: clock.now, sweepIntervalMs: 0 });
    await b.set('k', 'v', 1_000);
    await b.addMember('s', 'm', 1_000);
    clock.advance(999);
    assert.equal(await b.get('k'), 'v');
    assert.deepEqual(await b.members('s'), ['m']);
    clock.advance(1);
    assert.equal(await b.get('k'), undefined);
    assert.deepEqual(await b.members('s'), []);
    await b.close();
  });

  it('sweep reclaims expired keys that were never read again', async () => {
    const clock = manualClock();
    const b = createMemoryBackend({ now: clock.now, sweepIntervalMs: 0 });
    for (let i = 0; i < 10; i++) await b.set(`short${i}`, 'v', 100);
    await b.set('long', 'v', 10_000);
    assert.equal(b.size, 11);
    clock.advance(100);
    assert.equal(b.sweep(), 10);
    assert.equal(b.size, 1);
    assert.equal(await b.get('long'), 'v');
    await b.close();
  });

  it('the periodic sweep runs on its own and close() stops it', async () => {
    const b = createMemoryBackend({ sweepIntervalMs: 20 });
    await b.set('k', 'v', 1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(b.size, 0, 'the sweep removed the expired key without a read');
    await b.close();
    // A closed backend's timer no longer runs: an expired key stays until read.
    const c = createMemoryBackend({ sweepIntervalMs: 20 });
    await c.close();
    await c.set('k', 'v', 1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(c.size, 1);
  });

  it('is bounded: the key written longest ago is evicted when full', async () => {
    const b = createMemoryBackend({ maxEntries: 3, sweepIntervalMs: 0 });
    await b.set('a', '1', 60_000);
    await b.set('b', '2', 60_000);
    await b.set('c', '3', 60_000);
    await b.set('a', '1b', 60_000); // rewriting makes `a` the newest
    await b.set('d', '4', 60_000);
    assert.equal(b.size, 3);
    assert.equal(await b.get('b'), undefined);
    assert.equal(await b.get('a'), '1b');
    assert.equal(await b.get('c'), '3');
    assert.equal(await b.get('d'), '4');
    await b.close();
  });

  it('refuses to mix a set and a value under one key', async () => {
    const b = createMemoryBackend({ sweepIntervalMs: 0 });
    await b.set('v', 'x', 60_000);
    await b.addMember('s', 'm', 60_000);
    await assert.rejects(b.addMember('v', 'm', 60_000), TypeError);
    await assert.rejects(b.get('s'), TypeError);
    await b.close();
  });

  it('validates its options', () => {
    assert.throws(() => createMemoryBackend({ maxEntries: 0 }), RangeError);
  });
});
