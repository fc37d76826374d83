import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseDuration } from '../../src/config/duration.ts';

test('parses single and combined units to milliseconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('15m'), 900_000);
  assert.equal(parseDuration('24h'), 86_400_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1m30s250ms'), 90_250);
  assert.equal(parseDuration('0s'), 0);
});

test('refuses bare numbers, unknown units, spaces, signs, decimals and out-of-order units', () => {
  for (const bad of [
    '',
    '90',
    '1 minute',
    '1.5h',
    '-5s',
    '5 s',
    '30m1h',
    '1h1h',
    '10x',
    's',
    '1hm',
  ]) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});

test('refuses totals beyond the safe integer range', () => {
  assert.equal(parseDuration('99999999999999999999d'), undefined);
});
