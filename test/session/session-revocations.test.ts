/**
 * How long "not revoked" is trusted: briefly over a shared store, until a logout here over a
 * store no other process writes; and never when the look-up raced a logout.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionRevocations, sharedStoreRecheckMs } from '../../src/session/session-revocations.ts';
import type { RevocationSubject } from '../../src/session/sessions.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { memoryStore } from '../../src/store/shared-store.ts';
import type { StoreBackend } from '../../src/store/store-backend.ts';

const start = 1_700_000_000_000;

/** A memory backend that counts reads and can hold the next one until released. */
function watchedBackend(now: () => number) {
  const inner = createMemoryBackend({ now });
  const state = { reads: 0, hold: undefined as Promise<void> | undefined };
  const backend: StoreBackend = {
    ...inner,
    get: async (key, bound) => {
      state.reads++;
      // Read first, answer later: what a store does for a read sent just before a write.
      const value = await inner.get(key, bound);
      if (state.hold !== undefined) await state.hold;
      return value;
    },
    set: (key, value, ttl) => inner.set(key, value, ttl),
  };
  return { backend, state };
}

function world(recheckAfterMs?: number) {
  let t = start;
  const now = () => t;
  const { backend, state } = watchedBackend(now);
  const keyspaces = createAppKeyspaces(backend, {
    app: 'app',
    sessionMaxAge: 3_600_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now,
  });
  const revocations = new SessionRevocations(keyspaces, keyspaces, {
    now,
    ...(recheckAfterMs === undefined ? {} : { recheckAfterMs }),
  });
  return { revocations, state, advance: (ms: number) => (t += ms) };
}

const alice: RevocationSubject = { id: 'session-1', sub: 'alice', sid: 'sid-1', createdAt: start };
const ælfred: RevocationSubject = { id: 'séance-2', sub: 'Ælfred 🦊', createdAt: start };

describe('session revocations', () => {
  it('over a shared store, "not revoked" is trusted for a moment, then asked again', async () => {
    const { revocations, state, advance } = world();
    assert.equal(await revocations.isRevoked(alice), false);
    const reads = state.reads;
    assert.ok(reads > 0);
    // Trusted: answered at once, without a promise or a read.
    assert.equal(revocations.isRevoked(alice), false);
    advance(sharedStoreRecheckMs - 1);
    assert.equal(revocations.isRevoked(alice), false);
    assert.equal(state.reads, reads);
    advance(1);
    const asked = revocations.isRevoked(alice);
    assert.ok(asked instanceof Promise, 'asks the store once the trust has run out');
    assert.equal(await asked, false);
    assert.equal(state.reads, 2 * reads);
  });

  it('over a store only this process writes, it is trusted until a logout here', async () => {
    const { revocations, state, advance } = world(Number.POSITIVE_INFINITY);
    assert.equal(await revocations.isRevoked(alice), false);
    assert.equal(await revocations.isRevoked(ælfred), false);
    const reads = state.reads;
    advance(24 * 3_600_000);
    assert.equal(revocations.isRevoked(alice), false);
    assert.equal(revocations.isRevoked(ælfred), false);
    assert.equal(state.reads, reads);

    await revocations.endSession(ælfred);
    assert.equal(await revocations.isRevoked(ælfred), true, 'RP-initiated logout: at once');
    assert.equal(revocations.isRevoked(alice), false, 'the other session is still trusted');

    await revocations.endAll({ by: 'sid', value: 'sid-1' });
    assert.equal(await revocations.isRevoked(alice), true, 'back-channel logout: at once');
    const later = { ...alice, id: 'session-3', createdAt: start + 24 * 3_600_000 + 1 };
    assert.equal(await revocations.isRevoked(later), false, 'a session opened after the mark');
  });

  for (const [title, logout] of [
    ['a logout of that session', (r: SessionRevocations) => r.endSession(alice)],
    ['a logout of its sid', (r: SessionRevocations) => r.endAll({ by: 'sid', value: 'sid-1' })],
    ['a logout of its sub', (r: SessionRevocations) => r.endAll({ by: 'sub', value: 'alice' })],
  ] as const) {
    it(`a look-up that read the store before ${title} is not trusted`, async () => {
      const { revocations, state, advance } = world(Number.POSITIVE_INFINITY);
      let release!: () => void;
      state.hold = new Promise((resolve) => (release = resolve));
      const racing = revocations.isRevoked(alice);
      // Let the reads go out (and find nothing) before the logout is written.
      await new Promise((resolve) => setImmediate(resolve));
      state.hold = undefined;
      advance(1);
      await logout(revocations);
      release();
      assert.equal(await racing, false, 'what the store said when asked');
      assert.equal(await revocations.isRevoked(alice), true, 'asked again, and refused');
    });
  }

  it('the memory store is local to this process; the wiring trusts it until a logout', () => {
    const store = memoryStore(() => start);
    assert.equal(store.local, true);
  });
});
