import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpirySweeper, type SweepTimer } from '../../src/server/expiry-sweeper.ts';

/** A timer the test fires by hand: `tick()` is one period passing. */
function manualTimer(): SweepTimer & { tick(): void; running(): boolean } {
  let callback: (() => void) | undefined;
  return {
    start(cb) {
      callback = cb;
      return 1;
    },
    stop() {
      callback = undefined;
    },
    tick() {
      callback?.();
    },
    running: () => callback !== undefined,
  };
}

describe('ExpirySweeper', () => {
  it('expires an item after one to two periods, and not one deleted before', () => {
    const timer = manualTimer();
    const expired: string[] = [];
    const sweeper = new ExpirySweeper<string>(1000, (item) => expired.push(item), timer);
    sweeper.add('slow');
    sweeper.add('quick');
    timer.tick();
    assert.deepEqual(expired, [], 'nothing expires within the first period');
    sweeper.delete('quick');
    sweeper.add('late');
    timer.tick();
    assert.deepEqual(expired, ['slow']);
    timer.tick();
    assert.deepEqual(expired, ['slow', 'late']);
  });

  it('runs its timer only while it holds something', () => {
    const timer = manualTimer();
    const sweeper = new ExpirySweeper<number>(1000, () => {}, timer);
    assert.equal(timer.running(), false);
    sweeper.add(1);
    assert.equal(timer.running(), true);
    sweeper.delete(1);
    timer.tick();
    assert.equal(timer.running(), false, 'stopped once both generations are empty');
    sweeper.add(2);
    sweeper.clear();
    assert.equal(timer.running(), false);
  });

  it('lets an expiry put the item back for another round', () => {
    const timer = manualTimer();
    const seen: number[] = [];
    const sweeper: ExpirySweeper<number> = new ExpirySweeper<number>(
      1000,
      (item) => {
        seen.push(item);
        if (seen.length === 1) sweeper.add(item);
      },
      timer,
    );
    sweeper.add(7);
    timer.tick();
    timer.tick();
    timer.tick();
    timer.tick();
    assert.deepEqual(seen, [7, 7]);
  });
});
