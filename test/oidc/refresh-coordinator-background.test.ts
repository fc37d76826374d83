/** Refreshes nobody waits for: bounded waits, results kept past them, failures caught and logged once. */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it, mock } from 'node:test';
import type { OidcClient, RefreshResult } from '../../src/oidc/oidc-client.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { GrantLimiter, RefreshCoordinator } from '../../src/oidc/refresh-coordinator.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';

/** A token endpoint the test answers by hand: each grant waits until the test settles it. */
function handAnsweredProvider() {
  const pending: { refreshToken: string; settle: (r: Promise<RefreshResult>) => void }[] = [];
  const oidc = {
    refresh: (refreshToken: string) =>
      new Promise<RefreshResult>((resolve, reject) => {
        pending.push({
          refreshToken,
          settle: (r) => {
            r.then(resolve, reject);
          },
        });
      }),
  } as unknown as OidcClient;
  return { oidc, pending };
}

/** Lets the coordinator run until the provider holds `count` grants (the store is in memory). */
async function grantsReached(pending: readonly unknown[], count: number): Promise<void> {
  for (let turn = 0; pending.length < count; turn++) {
    assert.ok(turn < 1_000, `never reached ${count} grants`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function coordinator(
  oidc: OidcClient,
  waitTimeout: number,
  options: { outageGrace?: number; storeHangs?: boolean; syncReadMs?: number } = {},
) {
  /** Moves the coordinator's clock (not its timers) ahead. */
  const clock = { aheadMs: 0 };
  const now = () => Date.now() + clock.aheadMs;
  const memory = createMemoryBackend({ now });
  const syncReadMs = options.syncReadMs;
  // A store that never answers a read (hung, not yet known down), or one whose driver works
  // synchronously for a while before each read goes out.
  const backend = options.storeHangs
    ? Object.assign(Object.create(memory) as typeof memory, {
        get: () => new Promise<never>(() => undefined),
      })
    : syncReadMs !== undefined
      ? Object.assign(Object.create(memory) as typeof memory, {
          get: (key: string) => {
            const until = performance.now() + syncReadMs;
            while (performance.now() < until);
            return memory.get(key);
          },
        })
      : memory;
  const keyspaces = createAppKeyspaces(backend, {
    app: 'web',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now,
  });
  const errors: object[] = [];
  const warnings: string[] = [];
  const logger = {
    error: (obj: object) => errors.push(obj),
    warn: (_obj: object, msg: string) => warnings.push(msg),
    info: () => undefined,
    debug: () => undefined,
    child: () => logger,
  };
  const refresher = new RefreshCoordinator(
    {
      appName: 'web',
      lockTtl: 10_000,
      waitTimeout,
      maxAttempts: 3,
      cooldown: 30_000,
      resultTtl: 60_000,
      storeRecovery: 0,
      outageGrace: options.outageGrace ?? 0,
    },
    {
      oidc,
      locks: keyspaces.refreshLocks,
      results: keyspaces.refreshResults,
      metrics: {
        grant: () => undefined,
        follower: () => undefined,
        lockWait: () => undefined,
        gated: () => undefined,
      },
      grants: new GrantLimiter(10),
      now,
      logger: logger as never,
    },
  );
  return { refresher, errors, warnings, keyspaces, clock };
}

function session(refreshToken: string): Session {
  return {
    v: 1,
    id: 'sid',
    sub: 'alice',
    claims: {},
    tokens: { accessToken: 'at-1', refreshToken, idToken: 'id-1', expiresAt: Date.now() + 30_000 },
    createdAt: Date.now(),
    lastSeenAt: Date.now(),
  };
}

const rotated: RefreshResult = {
  tokens: { accessToken: 'at-2', refreshToken: 'rt-2', expiresAt: Date.now() + 300_000 },
};

/**
 * An expired session's refresh with a 200 ms bound on a store that never answers, under mocked
 * timers: `after(ms)` moves the clock and tells the outcome's kind so far.
 */
function hungRefresh(refreshToken: string, outageGrace: number) {
  const { oidc, pending } = handAnsweredProvider();
  const { refresher } = coordinator(oidc, 5_000, { outageGrace, storeHangs: true });
  const expired = { ...session(refreshToken), tokens: { ...session(refreshToken).tokens } };
  expired.tokens.expiresAt = Date.now() - 1_000;
  mock.timers.enable({ apis: ['setTimeout'] });
  let answered: string | undefined;
  void refresher.refresh(expired, 200).then((o) => (answered = o.kind));
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  return {
    async after(ms: number): Promise<string | undefined> {
      await turn();
      mock.timers.tick(ms);
      await turn();
      return answered;
    },
    grants: () => pending.length,
  };
}

describe('refresh coordinator: refreshes nobody waits for', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => process.on('unhandledRejection', onUnhandled));
  after(() => process.off('unhandledRejection', onUnhandled));

  it('refreshAhead answers at once, coalesces, and hands the published result to the next caller', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const { refresher } = coordinator(oidc, 5_000);
    const s = session('rt-ahead');
    assert.equal(await refresher.refreshAhead(s), undefined);
    assert.equal(await refresher.refreshAhead(s), undefined, 'the running refresh is joined');
    await grantsReached(pending, 1);
    pending[0]!.settle(Promise.resolve(rotated));
    // Whatever waits for the same refresh token now gets the published result, no second grant.
    const joined = await refresher.refresh(s);
    assert.equal(joined.kind, 'refreshed');
    const found = await refresher.refreshAhead(s);
    assert.equal(found?.kind === 'refreshed' && found.tokens.refreshToken, 'rt-2');
    assert.equal(pending.length, 1);
  });

  it('an expired session whose refresh is still held by the store halfway through its wait is deferred then, not at the end', async (t) => {
    t.after(() => mock.timers.reset());
    const wait = hungRefresh('rt-hung', 60_000);
    assert.equal(await wait.after(99), undefined, 'still waiting before half of its bound');
    assert.equal(await wait.after(1), 'deferred', 'served on its tokens at half of its bound');
    assert.equal(wait.grants(), 0, 'no grant: the store never answered');
  });

  it('with outageGrace 0 the halfway mark changes nothing: the caller waits its whole bound', async (t) => {
    t.after(() => mock.timers.reset());
    const wait = hungRefresh('rt-hung-0', 0);
    assert.equal(await wait.after(150), undefined);
    assert.equal(await wait.after(50), 'unavailable', '503 at the end of its bound, never a login');
  });

  it('a caller waits at most waitTimeout; the grant runs on and its rotated token is kept', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const { refresher } = coordinator(oidc, 30);
    const s = session('rt-slow');
    assert.deepEqual(await refresher.refresh(s), {
      kind: 'unavailable',
      retryAfterSeconds: 1,
      cause: 'the provider did not answer the refresh in time',
    });
    await grantsReached(pending, 1);
    pending[0]!.settle(Promise.resolve(rotated));
    // The next request finds the result instead of spending `rt-slow` again.
    const next = await refresher.refresh(s);
    assert.equal(next.kind === 'refreshed' && next.tokens.refreshToken, 'rt-2');
    assert.equal(pending.length, 1, 'the old refresh token is never sent again');
  });

  it("a caller's wait runs from when it asked, not from when starting the refresh let the timer be set", async () => {
    const { oidc } = handAnsweredProvider();
    // Starting the refresh (its first store read) takes 30 ms before anything is awaited.
    const { refresher } = coordinator(oidc, 5_000, { syncReadMs: 30 });
    const expired = { ...session('rt-busy'), tokens: { ...session('rt-busy').tokens } };
    expired.tokens.expiresAt = Date.now() - 1_000;
    // The caller's own deadline, 10 ms after the end of the wait it asked for: as the pipeline's
    // budget follows a step's wait, it must find the step already answered, on any machine.
    let callerGaveUp = false;
    const deadline = setTimeout(() => (callerGaveUp = true), 60);
    const outcome = await refresher.refresh(expired, 50);
    clearTimeout(deadline);
    assert.equal(outcome.kind, 'unavailable');
    assert.equal(callerGaveUp, false, 'answered before the deadline that follows the wait');
  });

  it("a request that joins a refresh stuck behind a dead replica's lock is served on its tokens when the refresh gives up", async () => {
    const { oidc, pending } = handAnsweredProvider();
    const { refresher, keyspaces, clock, warnings } = coordinator(oidc, 1_000, {
      outageGrace: 60_000,
    });
    const expired = { ...session('rt-orphaned'), tokens: { ...session('rt-orphaned').tokens } };
    expired.tokens.expiresAt = Date.now() - 1_000;
    // A replica took the lock and died: its lease runs far past every wait.
    await keyspaces.refreshLocks.setIfAbsent(sha256Base64url('rt-orphaned'), 'dead', 60_000);
    const first = refresher.refresh(expired, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A request joins the refresh waiting on the lock; then the refresh's own wait for the lock
    // runs out (its clock moves past waitTimeout), long before the request's wait would.
    const joined = refresher.refresh(expired, 5_000);
    clock.aheadMs = 1_500;
    assert.equal((await joined).kind, 'deferred', 'served on its current tokens, not 503');
    assert.equal((await first).kind, 'deferred');
    assert.equal(pending.length, 0, 'no grant while the lock is held');
    assert.equal(
      warnings.filter((msg) => msg.includes("another replica's lock")).length,
      1,
      'one line says why the refresh waits',
    );
  });

  it('an unexpected failure of a background refresh is caught and logged once', async () => {
    const { oidc, pending } = handAnsweredProvider();
    const { refresher, errors } = coordinator(oidc, 5_000);
    const s = session('rt-bug');
    assert.equal(await refresher.refreshAhead(s), undefined);
    await grantsReached(pending, 1);
    pending[0]!.settle(Promise.reject(new TypeError('a bug')));
    await grantsReached(errors, 1);
    const later = refresher.refresh(s);
    await grantsReached(pending, 2);
    pending[1]!.settle(Promise.resolve(rotated));
    assert.equal((await later).kind, 'refreshed', 'a later request tries again');
    assert.equal(errors.length, 1, 'one line');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
  });
});
