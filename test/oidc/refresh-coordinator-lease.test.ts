/** Branches no real component shows on cue: a lease lost during the grant, a result published meanwhile, a lock won only because the store went down, a result lost with the store. */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { sha256Base64url } from '../../src/digest.ts';
import { IdpError } from '../../src/errors.ts';
import type { OidcClient, RefreshResult } from '../../src/oidc/oidc-client.ts';
import { GrantLimiter, RefreshCoordinator } from '../../src/oidc/refresh-coordinator.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces, type AppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import type { StoreBackend } from '../../src/store/store-backend.ts';

/** A token endpoint the test answers by hand: each grant waits until the test settles it. */
function handAnsweredProvider() {
  const pending: { settle: (r: Promise<RefreshResult>) => void }[] = [];
  const oidc = {
    refresh: () =>
      new Promise<RefreshResult>((resolve, reject) => {
        pending.push({
          settle: (r) => {
            r.then(resolve, reject);
          },
        });
      }),
  } as unknown as OidcClient;
  return { oidc, pending };
}

/** Lets the coordinators run until `check` holds (the store is in memory). */
async function until(check: () => boolean): Promise<void> {
  for (let turn = 0; !check(); turn++) {
    assert.ok(turn < 1_000, 'never reached');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Lets the coordinators run until `check` resolves true. */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let turn = 0; !(await check()); turn++) {
    assert.ok(turn < 1_000, 'never reached');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * One replica on the shared `backend`, with a store-degraded switch the test flips and when the
 * store last said it was degraded (`performance.now()`).
 */
function replica(backend: StoreBackend, oidc: OidcClient, storeRecovery = 0) {
  const keyspaces: AppKeyspaces = createAppKeyspaces(backend, {
    app: 'web',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
  });
  const counted = {
    grants: [] as string[],
    gated: [] as string[],
    followers: [] as string[],
    lockWaits: 0,
  };
  const store = { degraded: false, degradedAt: Number.NEGATIVE_INFINITY };
  const refresher = new RefreshCoordinator(
    {
      appName: 'web',
      lockTtl: 10_000,
      waitTimeout: 5_000,
      maxAttempts: 3,
      cooldown: 30_000,
      resultTtl: 60_000,
      storeRecovery,
      outageGrace: 0,
    },
    {
      oidc,
      locks: keyspaces.refreshLocks,
      results: keyspaces.refreshResults,
      metrics: {
        grant: (outcome) => counted.grants.push(outcome),
        follower: (source) => counted.followers.push(source),
        lockWait: () => {
          counted.lockWaits++;
        },
        gated: (gate) => counted.gated.push(gate),
      },
      grants: new GrantLimiter(10),
      now: Date.now,
      degraded: () => store.degraded,
      msSinceDegraded: () => (store.degraded ? 0 : performance.now() - store.degradedAt),
    },
  );
  return { refresher, keyspaces, counted, store };
}

function session(refreshToken: string): Session {
  return {
    v: 1,
    id: 'sid',
    sub: 'alice',
    claims: {},
    tokens: { accessToken: 'at-1', refreshToken, idToken: 'id-1', expiresAt: Date.now() - 1_000 },
    createdAt: Date.now(),
    lastSeenAt: Date.now(),
  };
}

const rotated: RefreshResult = {
  tokens: { accessToken: 'at-2', refreshToken: 'rt-2', expiresAt: Date.now() + 300_000 },
};
const refused = () => Promise.reject(new IdpError('token', 'invalid_grant'));

describe('refresh coordinator: whose invalid_grant ends a session', () => {
  it('a leader whose lease lapsed during the grant does not trust its invalid_grant', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const shared = createMemoryBackend();
    const a = replica(shared, oidc);
    const s = session('rt-lapsed');
    const id = sha256Base64url('rt-lapsed');
    const running = a.refresher.refresh(s);
    await until(() => pending.length === 1);
    // The lease ran out (renewals lost) and another replica holds it now.
    await a.keyspaces.refreshLocks.delete(id);
    assert.ok(await a.keyspaces.refreshLocks.setIfAbsent(id, 'other-replica'));
    pending[0]!.settle(refused());
    assert.equal((await running).kind, 'unavailable', 'the session is kept');
    assert.deepEqual(a.counted.grants, ['invalid_grant_unconfirmed']);
  });

  it('a result another replica published meanwhile wins over an invalid_grant', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const shared = createMemoryBackend();
    const a = replica(shared, oidc);
    const b = replica(shared, oidc);
    const s = session('rt-raced');
    const id = sha256Base64url('rt-raced');
    const first = a.refresher.refresh(s);
    await until(() => pending.length === 1);
    // A's lease lapses; B takes over and finishes first.
    await a.keyspaces.refreshLocks.delete(id);
    const second = b.refresher.refresh(s);
    await until(() => pending.length === 2);
    pending[1]!.settle(Promise.resolve(rotated));
    assert.equal((await second).kind, 'refreshed');
    pending[0]!.settle(refused());
    const outcome = await first;
    assert.equal(outcome.kind === 'refreshed' && outcome.tokens.refreshToken, 'rt-2');
    assert.deepEqual(a.counted.grants, [], 'not counted as a grant outcome of its own');
    assert.deepEqual(a.counted.followers, ['replica']);
  });

  it('a waiter that gets the lock only because the store went down does not spend the token', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const shared = createMemoryBackend();
    const a = replica(shared, oidc);
    const b = replica(shared, oidc);
    const s = session('rt-waiting');
    const id = sha256Base64url('rt-waiting');
    const leading = a.refresher.refresh(s);
    await until(() => pending.length === 1);
    const waiting = b.refresher.refresh(s);
    await until(() => b.counted.lockWaits === 1);
    // B's store goes down: its lock calls now reach its own memory, where nobody holds it.
    b.store.degraded = true;
    await b.keyspaces.refreshLocks.delete(id);
    assert.deepEqual(await waiting, {
      kind: 'unavailable',
      retryAfterSeconds: 1,
      cause:
        "another replica's refresh lock was lost with the store, and the tokens expired beyond refresh.outageGrace",
    });
    assert.deepEqual(b.counted.gated, ['store']);
    assert.equal(pending.length, 1, 'no second grant');
    pending[0]!.settle(Promise.resolve(rotated));
    assert.equal((await leading).kind, 'refreshed');
  });

  it('a lock taken while the store degraded and recovered at once is not shared: its invalid_grant keeps the session', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const shared = createMemoryBackend();
    // The lock write timed out and went to memory; another write answered before the grant, so
    // the store no longer says it is degraded. Only the count tells.
    const blipping: StoreBackend = {
      ...shared,
      setIfAbsent: (key, value, ttlMs) => {
        a.store.degradedAt = performance.now();
        return shared.setIfAbsent(key, value, ttlMs);
      },
    };
    const a = replica(blipping, oidc, 60_000);
    const running = a.refresher.refresh(session('rt-blip'));
    await until(() => pending.length === 1);
    assert.equal(a.store.degraded, false);
    pending[0]!.settle(refused());
    assert.equal((await running).kind, 'unavailable', 'the session is kept');
    assert.deepEqual(a.counted.grants, ['invalid_grant_unconfirmed']);
  });

  it('an invalid_grant under a lock every replica saw still ends the session', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const a = replica(createMemoryBackend(), oidc);
    const running = a.refresher.refresh(session('rt-revoked'));
    await until(() => pending.length === 1);
    pending[0]!.settle(refused());
    assert.deepEqual(await running, { kind: 'ended' });
    assert.deepEqual(a.counted.grants, ['invalid_grant']);
  });
});

describe('refresh coordinator: a result the store lost', () => {
  it('a result published before the store went down is offered to it again once it is back', async (t) => {
    // Only the retry of unshared results runs on an interval: ticked by hand.
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { oidc, pending } = handAnsweredProvider();
    const shared = createMemoryBackend();
    const a = replica(shared, oidc);
    const b = replica(shared, oidc);
    const expired = session('rt-ahead');
    const due = { ...expired, tokens: { ...expired.tokens, expiresAt: Date.now() + 1_000 } };
    const id = sha256Base64url('rt-ahead');
    const published = async () => (await a.keyspaces.refreshResults.get(id)) !== undefined;

    // A refreshes ahead: its request is served on the old tokens, the browser keeps the old
    // cookie, and the result goes to the store, which is healthy.
    assert.equal(await a.refresher.refreshAhead(due), undefined);
    await until(() => pending.length === 1);
    pending[0]!.settle(Promise.resolve(rotated));
    await eventually(published);

    // The store goes down before any request read the result, and comes back empty.
    a.store.degraded = true;
    b.store.degraded = true;
    await a.keyspaces.refreshResults.delete(id);
    assert.equal(await published(), false);
    // A request on A meanwhile finds nothing and sees the store down.
    assert.equal(await a.refresher.refreshAhead(due), undefined);
    for (const { store } of [a, b]) {
      store.degraded = false;
      store.degradedAt = performance.now();
    }
    t.mock.timers.tick(250);
    await eventually(published);

    // B, with the old cookie, gets A's tokens instead of spending the rotated refresh token.
    const outcome = await b.refresher.refresh(expired);
    assert.equal(outcome.kind === 'refreshed' && outcome.tokens.refreshToken, 'rt-2');
    assert.equal(pending.length, 1, 'one grant');
    assert.deepEqual(b.counted.followers, ['late']);
  });
});
