/**
 * How long "not revoked" is trusted, for sessions and bearer token ids: briefly (sessions) or
 * not at all (token ids) over a shared store, until a revocation here over a store no other
 * process writes; and never when the look-up raced a revocation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  RevocationTrust,
  RevocationTrusts,
  sharedStoreRecheckMs,
} from '../../src/session/revocation-trust.ts';
import { SessionRevocations } from '../../src/session/session-revocations.ts';
import { BearerRevocations } from '../../src/authz/bearer-revocations.ts';
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
  const trust =
    recheckAfterMs === undefined ? undefined : new RevocationTrust({ now, recheckAfterMs });
  const replica = () =>
    new SessionRevocations(keyspaces, keyspaces, {
      now,
      ...(trust === undefined ? {} : { trust }),
    });
  const bearer = new BearerRevocations(keyspaces.revokedTokens, keyspaces.revokedTokens, trust);
  return { revocations: replica(), replica, bearer, state, advance: (ms: number) => (t += ms) };
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

  it('a logout taken by the runtime a reload replaced reaches what its successor trusts', async () => {
    const { replica, state } = world(Number.POSITIVE_INFINITY);
    const before = replica();
    const after = replica();
    assert.equal(await after.isRevoked(alice), false);
    const reads = state.reads;
    await before.endSession(alice);
    assert.equal(await after.isRevoked(alice), true);
    assert.ok(state.reads > reads);
  });

  it('the trust of each app and kind is one per process: shared store brief, local until a logout', () => {
    let t = start;
    const now = () => t;
    const local = new RevocationTrusts(now, true);
    const shared = new RevocationTrusts(now, false);
    assert.equal(local.sessions('web'), local.sessions('web'), 'kept across reloads');
    assert.notEqual(local.sessions('web'), local.sessions('api'));
    const localTokens = local.bearerTokens('web') ?? assert.fail('a local store trusts token ids');
    assert.equal(local.bearerTokens('web'), localTokens, 'kept across reloads');
    assert.notEqual(local.sessions('web'), localTokens);
    for (const trust of [local.sessions('web'), localTokens, shared.sessions('web')]) {
      trust.trust('k', trust.startLookUp());
    }
    t += sharedStoreRecheckMs;
    assert.equal(local.sessions('web').has('k'), true);
    assert.equal(localTokens.has('k'), true);
    assert.equal(shared.sessions('web').has('k'), false, 'over a shared store: asked again');
    assert.equal(
      shared.bearerTokens('web'),
      undefined,
      'a bearer revocation over a shared store is in effect at once: nothing trusted',
    );
    assert.equal(memoryStore(now).local, true);
  });

  it('bearer token ids over a shared store: every Check asks the store', async () => {
    const { bearer, state } = world();
    for (let i = 0; i < 3; i++) {
      const asked = bearer.isRevoked('jti-1');
      assert.ok(asked instanceof Promise);
      assert.equal(await asked, false);
    }
    assert.equal(state.reads, 3);
  });

  it('bearer token ids over a local store: trusted until revoked here, at once', async () => {
    const { bearer, state } = world(Number.POSITIVE_INFINITY);
    assert.equal(await bearer.isRevoked('jti-ü'), false);
    assert.equal(bearer.isRevoked('jti-ü'), false, 'answered without a promise');
    assert.equal(state.reads, 1);
    await bearer.revoke('jti-ü', start + 60_000);
    assert.equal(await bearer.isRevoked('jti-ü'), true);
  });

  it('a bearer look-up that read the store before a revocation is not trusted', async () => {
    const { bearer, state, advance } = world(Number.POSITIVE_INFINITY);
    let release!: () => void;
    state.hold = new Promise((resolve) => (release = resolve));
    const racing = bearer.isRevoked('jti-1');
    await new Promise((resolve) => setImmediate(resolve));
    state.hold = undefined;
    advance(1);
    await bearer.revoke('jti-1', start + 60_000);
    release();
    assert.equal(await racing, false, 'what the store said when asked');
    assert.equal(await bearer.isRevoked('jti-1'), true, 'asked again, and refused');
  });
});
