/** The behaviour every store backend must show; run against each backend with real time. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { StoreBackend } from '../../src/store/store-backend.ts';

/** A backend under test and how to dispose of it. */
export interface BackendUnderTest {
  readonly backend: StoreBackend;
  close(): Promise<void>;
}

/** Short real TTLs keep the suite fast; the margins absorb a slow CI machine. */
const SHORT_TTL = 150;
const PAST_SHORT_TTL = 400;
const LONG_TTL = 60_000;

/**
 * Registers the store contract suite for one backend. `makeBackend` is called once per test
 * and must return an empty backend (e.g. a fresh key prefix or a flushed database).
 */
export function runStoreContract(name: string, makeBackend: () => Promise<BackendUnderTest>): void {
  async function withBackend(body: (backend: StoreBackend) => Promise<void>): Promise<void> {
    const subject = await makeBackend();
    try {
      await body(subject.backend);
    } finally {
      await subject.close();
    }
  }

  describe(`store contract: ${name}`, () => {
    it('get returns what set stored, and undefined for an absent key', () =>
      withBackend(async (b) => {
        assert.equal(await b.get('k'), undefined);
        await b.set('k', 'v1', LONG_TTL);
        assert.equal(await b.get('k'), 'v1');
        await b.set('k', 'v2', LONG_TTL);
        assert.equal(await b.get('k'), 'v2');
      }));

    it('keeps values byte for byte, including unicode and separators', () =>
      withBackend(async (b) => {
        const value = 'a:b;c,d e\u00e9\u{1F600}{"x":1}';
        await b.set('odd:key/with spaces', value, LONG_TTL);
        assert.equal(await b.get('odd:key/with spaces'), value);
      }));

    it('a value disappears after its TTL', () =>
      withBackend(async (b) => {
        await b.set('k', 'v', SHORT_TTL);
        assert.equal(await b.get('k'), 'v');
        await sleep(PAST_SHORT_TTL);
        assert.equal(await b.get('k'), undefined);
      }));

    it('setIfAbsent sets once, refuses while present, and succeeds again after expiry', () =>
      withBackend(async (b) => {
        assert.equal(await b.setIfAbsent('k', 'first', SHORT_TTL), true);
        assert.equal(await b.setIfAbsent('k', 'second', SHORT_TTL), false);
        assert.equal(await b.get('k'), 'first');
        await sleep(PAST_SHORT_TTL);
        assert.equal(await b.setIfAbsent('k', 'third', LONG_TTL), true);
        assert.equal(await b.get('k'), 'third');
      }));

    it('setIfAbsent under concurrency: exactly one of 100 wins', () =>
      withBackend(async (b) => {
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => b.setIfAbsent('lock', `owner-${i}`, LONG_TTL)),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = results.indexOf(true);
        assert.equal(await b.get('lock'), `owner-${winner}`);
      }));

    it('delete removes and reports whether something was there', () =>
      withBackend(async (b) => {
        await b.set('k', 'v', LONG_TTL);
        assert.equal(await b.delete('k'), true);
        assert.equal(await b.get('k'), undefined);
        assert.equal(await b.delete('k'), false);
      }));

    it('deleteIfEquals releases only for the owner token', () =>
      withBackend(async (b) => {
        await b.set('lock', 'owner-a', LONG_TTL);
        assert.equal(await b.deleteIfEquals('lock', 'owner-b'), false);
        assert.equal(await b.get('lock'), 'owner-a');
        assert.equal(await b.deleteIfEquals('lock', 'owner-a'), true);
        assert.equal(await b.get('lock'), undefined);
        assert.equal(await b.deleteIfEquals('lock', 'owner-a'), false);
      }));

    it('take returns the value once and removes it', () =>
      withBackend(async (b) => {
        await b.set('once', 'v', LONG_TTL);
        assert.equal(await b.take('once'), 'v');
        assert.equal(await b.take('once'), undefined);
        assert.equal(await b.get('once'), undefined);
      }));

    it('take under concurrency: exactly one of 100 concurrent takes wins', () =>
      withBackend(async (b) => {
        await b.set('once', 'prize', LONG_TTL);
        const results = await Promise.all(Array.from({ length: 100 }, () => b.take('once')));
        assert.deepEqual(
          results.filter((r) => r !== undefined),
          ['prize'],
        );
      }));

    it('take of an expired value returns undefined', () =>
      withBackend(async (b) => {
        await b.set('once', 'v', SHORT_TTL);
        await sleep(PAST_SHORT_TTL);
        assert.equal(await b.take('once'), undefined);
      }));

    it('expireIfEquals renews only for the owner token', () =>
      withBackend(async (b) => {
        await b.set('lease', 'owner-a', SHORT_TTL);
        assert.equal(await b.expireIfEquals('lease', 'owner-b', LONG_TTL), false);
        assert.equal(await b.expireIfEquals('lease', 'owner-a', LONG_TTL), true);
        await sleep(PAST_SHORT_TTL);
        assert.equal(await b.get('lease'), 'owner-a');
        await b.set('lease2', 'owner-a', SHORT_TTL);
        assert.equal(await b.expireIfEquals('lease2', 'owner-b', LONG_TTL), false);
        await sleep(PAST_SHORT_TTL);
        assert.equal(await b.get('lease2'), undefined, 'a refused renewal must not extend');
        assert.equal(await b.expireIfEquals('absent', 'owner-a', LONG_TTL), false);
      }));

    it('sets: add, members, remove; an emptied set is gone', () =>
      withBackend(async (b) => {
        assert.deepEqual(await b.members('idx'), []);
        await b.addMember('idx', 'a', LONG_TTL);
        await b.addMember('idx', 'b', LONG_TTL);
        await b.addMember('idx', 'a', LONG_TTL);
        assert.deepEqual([...(await b.members('idx'))].sort(), ['a', 'b']);
        assert.equal(await b.removeMember('idx', 'a'), true);
        assert.equal(await b.removeMember('idx', 'a'), false);
        assert.deepEqual(await b.members('idx'), ['b']);
        assert.equal(await b.removeMember('idx', 'b'), true);
        assert.deepEqual(await b.members('idx'), []);
        assert.equal(await b.delete('idx'), false, 'an emptied set no longer exists');
        assert.equal(await b.removeMember('absent', 'x'), false);
      }));

    it('sets: delete removes the whole set', () =>
      withBackend(async (b) => {
        await b.addMember('idx', 'a', LONG_TTL);
        assert.equal(await b.delete('idx'), true);
        assert.deepEqual(await b.members('idx'), []);
      }));

    it('sets: the set expires after its TTL', () =>
      withBackend(async (b) => {
        await b.addMember('idx', 'a', SHORT_TTL);
        assert.deepEqual(await b.members('idx'), ['a']);
        await sleep(PAST_SHORT_TTL);
        assert.deepEqual(await b.members('idx'), []);
      }));

    it('sets: adding extends the lifetime and never shortens it', () =>
      withBackend(async (b) => {
        await b.addMember('grow', 'a', SHORT_TTL);
        await b.addMember('grow', 'b', LONG_TTL);
        await b.addMember('keep', 'a', LONG_TTL);
        await b.addMember('keep', 'b', SHORT_TTL);
        await sleep(PAST_SHORT_TTL);
        assert.deepEqual([...(await b.members('grow'))].sort(), ['a', 'b']);
        assert.deepEqual([...(await b.members('keep'))].sort(), ['a', 'b']);
      }));

    it('sets: many concurrent additions all land', () =>
      withBackend(async (b) => {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) => b.addMember('idx', `m${i}`, LONG_TTL)),
        );
        assert.equal((await b.members('idx')).length, 100);
      }));

    it('keys are independent of each other', () =>
      withBackend(async (b) => {
        await b.set('a', '1', LONG_TTL);
        await b.set('b', '2', LONG_TTL);
        await b.addMember('c', 'x', LONG_TTL);
        assert.equal(await b.take('a'), '1');
        assert.equal(await b.get('b'), '2');
        assert.deepEqual(await b.members('c'), ['x']);
      }));

    it('rejects a non-positive TTL instead of storing a value forever', () =>
      withBackend(async (b) => {
        await assert.rejects(b.set('k', 'v', 0));
        await assert.rejects(b.setIfAbsent('k', 'v', -5));
        assert.equal(await b.get('k'), undefined);
      }));
  });
}
