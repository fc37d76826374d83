/** One timer for many deadlines of one length: expired watches fire once, in order; settled ones never. */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { DeadlineQueue } from '../src/deadline-queue.ts';

describe('DeadlineQueue', () => {
  it('fires each open watch once its deadline passed, in order, and never a settled one', async () => {
    const queue = new DeadlineQueue();
    const fired: number[] = [];
    const start = performance.now();
    const watches = Array.from({ length: 5 }, (_, i) =>
      queue.watch(start + 10 + i * 5, () => fired.push(i)),
    );
    watches[1]!.settle();
    watches[3]!.settle();
    const last = new Promise<void>((resolve) => queue.watch(start + 40, resolve));
    await last;
    assert.deepEqual(fired, [0, 2, 4]);
    assert.ok(performance.now() - start >= 39);
  });

  it('keeps one queue through thousands of watches, settled or not, and starts again when empty', async () => {
    const queue = new DeadlineQueue();
    let fired = 0;
    const base = performance.now() + 5;
    for (let i = 0; i < 5_000; i++) {
      const watch = queue.watch(base, () => (fired += 1));
      if (i % 10 !== 0) watch.settle();
    }
    await new Promise<void>((resolve) => queue.watch(base + 1, resolve));
    assert.equal(fired, 500);
    // Empty again: a new watch arms a new timer.
    await new Promise<void>((resolve) => queue.watch(performance.now() + 1, resolve));
  });
});
