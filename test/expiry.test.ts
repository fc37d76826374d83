import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasExpired } from '../src/expiry.ts';

describe('hasExpired', () => {
  it('a deadline is over at the instant it names, not a millisecond later', () => {
    const table: readonly [deadline: number, now: number, expired: boolean][] = [
      [1_000, 999, false],
      [1_000, 1_000, true],
      [1_000, 1_001, true],
      [0, 0, true],
      [Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER, false],
      [Number.NaN, 1_000, false],
    ];
    for (const [deadline, now, expired] of table) {
      assert.equal(hasExpired(deadline, now), expired, `deadline ${deadline} at ${now}`);
    }
  });
});
