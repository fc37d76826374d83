/** Refresh under faults, with a real provider and replicas sharing a real redis-server: a slow provider, a store outage, a lock holder that died. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { TestProvider } from '../../dev/test-provider.ts';
import { sha256Base64url } from '../../src/digest.ts';
import {
  GrantLimiter,
  RefreshCoordinator,
  type RefreshOutcome,
} from '../../src/oidc/refresh-coordinator.ts';
import { createBreakers } from '../../src/resilience/breakers.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces, type AppKeyspaces } from '../../src/store/keyspaces.ts';
import { createRedisBackend } from '../../src/store/redis-backend.ts';
import { storeCallTimeoutMs } from '../../src/main.ts';
import { redisStore, type SharedStore } from '../../src/store/shared-store.ts';
import { breakersTuning } from '../resilience/breaker-tuning.ts';
import { captureLog } from '../resilience/log-capture.ts';
import { redisCli, startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import { loginAndExchange, readyClient, startProvider } from './oidc-fixtures.ts';
import type { StandaloneClient } from './oidc-fixtures.ts';

const LOCK_TTL = 1_000;
const STORE_RECOVERY = 600;

/** What one replica's coordinator counted. */
interface Counted {
  readonly grants: string[];
  readonly gated: string[];
  readonly followers: string[];
}

/** One replica: its own Redis connection, store breaker, memory fallback, client and coordinator. */
interface Replica {
  readonly refresher: RefreshCoordinator;
  readonly store: SharedStore;
  readonly keyspaces: AppKeyspaces;
  readonly counted: Counted;
  close(): Promise<void>;
}

/** One replica's coordinator; `outageGrace` 0 refreshes at once while the store is down. */
function replica(redis: RedisProcess, client: StandaloneClient, outageGrace = 0): Replica {
  const { logger } = captureLog();
  const registry = new Registry();
  const backend = createRedisBackend(
    { url: redis.url, keyPrefix: 'faults:', commandTimeout: 300 },
    { logger, reconnectMaxDelayMs: 100, connectTimeoutMs: 300 },
  );
  const breakers = createBreakers({
    registry,
    logger,
    ...breakersTuning({
      store: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: '200ms' },
    }),
    storeProbe: () => backend.ping(),
  });
  const store = redisStore(backend, breakers.store, {
    logger,
    registry,
    probe: () => backend.ping(),
    callTimeoutMs: () => storeCallTimeoutMs(100, 300),
  });
  const keyspaces = createAppKeyspaces(store.degradable, {
    app: 'web',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: LOCK_TTL,
    refreshResultTtl: 60_000,
  });
  const counted: Counted = { grants: [], gated: [], followers: [] };
  const refresher = new RefreshCoordinator(
    {
      appName: 'web',
      lockTtl: LOCK_TTL,
      waitTimeout: 2_000,
      maxAttempts: 3,
      cooldown: 30_000,
      resultTtl: 60_000,
      storeRecovery: STORE_RECOVERY,
      outageGrace,
    },
    {
      oidc: client,
      locks: keyspaces.refreshLocks,
      results: keyspaces.refreshResults,
      metrics: {
        grant: (outcome) => counted.grants.push(outcome),
        follower: (source) => counted.followers.push(source),
        lockWait: () => undefined,
        gated: (gate) => counted.gated.push(gate),
      },
      grants: new GrantLimiter(10),
      now: Date.now,
      logger,
      degraded: () => store.degraded(),
      msSinceDegraded: () => store.msSinceDegraded(),
    },
  );
  return {
    refresher,
    store,
    keyspaces,
    counted,
    async close() {
      breakers.shutdown();
      await store.close();
    },
  };
}

/** The client with its refresh grants held (before they reach the provider) while `hold()` lasts. */
function heldGrants(client: StandaloneClient): {
  client: StandaloneClient;
  hold(): void;
  release(): void;
  held(): number;
} {
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  let held = 0;
  const wrapped = Object.create(client) as StandaloneClient;
  Object.defineProperty(wrapped, 'refresh', {
    value: async (...args: Parameters<StandaloneClient['refresh']>) => {
      if (gate !== undefined) {
        held += 1;
        await gate.promise;
      }
      return client.refresh(...args);
    },
  });
  return {
    client: wrapped,
    hold() {
      let open = () => undefined as void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gate = { promise, open };
    },
    release() {
      gate?.open();
      gate = undefined;
    },
    held: () => held,
  };
}

/**
 * Kills Redis until `seer` has seen it down through `call` (then runs `meanwhile`), restarts it,
 * and waits until the store is back and has settled (`storeRecovery`).
 */
async function outageSeenBy(
  redis: RedisProcess,
  seer: Replica,
  call: () => Promise<unknown>,
  meanwhile?: () => Promise<void>,
): Promise<void> {
  await redis.kill('SIGKILL');
  try {
    await waitFor('the store to be seen down', async () => {
      await call();
      return seer.store.degraded();
    });
    await meanwhile?.();
  } finally {
    await redis.restart();
  }
  await waitFor('the store to be back', async () => {
    await call();
    return !seer.store.degraded();
  });
  await delay(STORE_RECOVERY);
}

/** A session whose access token has expired: the next request must refresh it. */
async function expiredSession(client: StandaloneClient): Promise<Session> {
  const { result } = await loginAndExchange(client);
  assert.ok(result.tokens.refreshToken !== undefined, 'the provider issued a refresh token');
  return {
    v: 1,
    id: randomBytes(12).toString('base64url'),
    sub: result.claims.sub,
    claims: {},
    tokens: { ...result.tokens, expiresAt: Date.now() - 1_000 },
    createdAt: Date.now(),
    lastSeenAt: Date.now(),
  };
}

function refreshGrants(provider: TestProvider): { success: number; invalid_grant: number } {
  const byOutcome = provider.counters().grants['refresh_token'] ?? {};
  return { success: byOutcome['success'] ?? 0, invalid_grant: byOutcome['invalid_grant'] ?? 0 };
}

function refreshTokenOf(outcome: RefreshOutcome | undefined): string | undefined {
  return outcome?.kind === 'refreshed' ? outcome.tokens.refreshToken : undefined;
}

describe('refresh coordinator under faults (real provider, replicas on one redis-server)', () => {
  let provider: TestProvider;
  let redis: RedisProcess;
  let client: StandaloneClient;
  let a: Replica;
  let b: Replica;

  before(async () => {
    provider = await startProvider();
    redis = await startRedis();
    // Per-request deadline 2 s, as short as it gets: the grant must not be held to it.
    client = await readyClient(provider, {}, { fetchTimeoutMs: 2_000 });
    a = replica(redis, client);
    b = replica(redis, client);
  });

  after(async () => {
    await a.close();
    await b.close();
    client.close();
    await provider.close();
    await redis.stop();
  });

  it('a grant the provider answers in 6 s runs to completion: its result is published and used, the session kept', async () => {
    const session = await expiredSession(client);
    const before = refreshGrants(provider);
    provider.injectFault({ target: 'token', latencyMs: 6_000, count: 1 });
    try {
      const started = performance.now();
      const first = await a.refresher.refresh(session, 200);
      assert.deepEqual(first, {
        kind: 'unavailable',
        retryAfterSeconds: 1,
        cause: 'the provider did not answer the refresh in time',
      });
      assert.ok(performance.now() - started < 1_000, 'the caller waited its own bound only');
      await waitFor(
        'the slow grant to finish',
        () => refreshGrants(provider).success > before.success,
      );
      // A later request, on this replica or another, finds the result instead of the provider.
      const onA = await a.refresher.refresh(session);
      const onB = await b.refresher.refresh(session);
      assert.equal(onA.kind, 'refreshed');
      assert.equal(refreshTokenOf(onB), refreshTokenOf(onA));
      assert.notEqual(refreshTokenOf(onA), session.tokens.refreshToken, 'rotated');
      const after = refreshGrants(provider);
      assert.equal(after.success - before.success, 1, 'one grant');
      assert.equal(after.invalid_grant - before.invalid_grant, 0, 'no invalid_grant');
    } finally {
      provider.clearFaults();
    }
  });

  for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
    it(`Redis ${signal === 'SIGKILL' ? 'killed' : 'hung'} with the access token expired: the loser keeps the session and takes the winner's result once the store is back`, async () => {
      const session = await expiredSession(client);
      const before = refreshGrants(provider);
      const endedBefore = [...a.counted.grants, ...b.counted.grants].filter(
        (g) => g === 'invalid_grant',
      ).length;
      await redis.kill(signal);
      let won: RefreshOutcome;
      try {
        // Each replica takes its own "lock" in memory: both spend the same refresh token.
        won = await a.refresher.refresh(session);
        assert.equal(won.kind, 'refreshed', 'the first replica refreshed');
        assert.ok(a.store.degraded(), 'on its memory fallback');
        const lost = await b.refresher.refresh(session);
        assert.equal(lost.kind, 'unavailable', 'the loser keeps the session');
        assert.equal(b.counted.grants.at(-1), 'invalid_grant_unconfirmed');
        // Asked again while the store is still down: no further grant.
        const providerCalls = refreshGrants(provider);
        assert.equal((await b.refresher.refresh(session)).kind, 'unavailable');
        assert.equal(b.counted.gated.at(-1), 'store');
        assert.deepEqual(refreshGrants(provider), providerCalls, 'the loser does not retry');
      } finally {
        if (signal === 'SIGKILL') await redis.restart();
        else await redis.kill('SIGCONT');
      }
      // The winner writes the result it kept in memory to the store once it is back; the loser
      // reads it once its own breaker sees the store back.
      const id = sha256Base64url(session.tokens.refreshToken!);
      await waitFor(
        "the winner's result in Redis",
        async () =>
          !a.store.degraded() &&
          !b.store.degraded() &&
          (await redisCli(
            redis.port,
            'EXISTS',
            `faults:${a.keyspaces.refreshResults.keyFor(id)}`,
          )) === '1',
      );
      const recovered = await b.refresher.refresh(session);
      assert.equal(
        refreshTokenOf(recovered),
        refreshTokenOf(won),
        "the loser uses the winner's result",
      );
      assert.equal(b.counted.followers.at(-1), 'late');
      const after = refreshGrants(provider);
      assert.equal(after.success - before.success, 1, 'one grant succeeded');
      assert.equal(after.invalid_grant - before.invalid_grant, 1, "the loser's, not trusted");
      const ended = [...a.counted.grants, ...b.counted.grants].filter((g) => g === 'invalid_grant');
      assert.equal(ended.length, endedBefore, 'no invalid_grant counted as ended');
    });
  }

  it('with refresh.outageGrace, Redis killed with the access token expired: no replica spends the token until the store is back, then one grant serves both', async () => {
    const graceA = replica(redis, client, 60_000);
    const graceB = replica(redis, client, 60_000);
    try {
      const session = await expiredSession(client);
      const before = refreshGrants(provider);
      await redis.kill('SIGKILL');
      try {
        for (const r of [graceA, graceB, graceA, graceB]) {
          assert.equal((await r.refresher.refresh(session)).kind, 'deferred');
          assert.equal(r.counted.gated.at(-1), 'store');
        }
        assert.deepEqual(refreshGrants(provider), before, 'no grant while the store is down');
      } finally {
        await redis.restart();
      }
      // Once the store is back and settled, one replica refreshes and the other takes its result.
      let refreshed: RefreshOutcome | undefined;
      await waitFor('a refresh once the store has settled', async () => {
        refreshed = await graceA.refresher.refresh(session);
        return refreshed.kind === 'refreshed';
      });
      const other = await graceB.refresher.refresh(session);
      assert.equal(refreshTokenOf(other), refreshTokenOf(refreshed));
      const after = refreshGrants(provider);
      assert.equal(after.success - before.success, 1, 'one grant');
      assert.equal(after.invalid_grant - before.invalid_grant, 0, 'no refresh token spent twice');
    } finally {
      await graceA.close();
      await graceB.close();
    }
  });

  it('with refresh.outageGrace, Redis hung just now with the access token expired: the first refresh answers deferred within the request budget, no grant', async () => {
    // Fresh replicas: neither has seen the store down. The first store call of the refresh is
    // the one that finds the hang (it times out at half the budget).
    const graceA = replica(redis, client, 60_000);
    const graceB = replica(redis, client, 60_000);
    try {
      const session = await expiredSession(client);
      const before = refreshGrants(provider);
      await redis.kill('SIGSTOP');
      try {
        assert.equal(graceA.store.degraded(), false, 'the hang is not known yet');
        const outcomes = await Promise.all([
          graceA.refresher.refresh(session, 95),
          graceB.refresher.refresh(session, 95),
        ]);
        assert.deepEqual(
          outcomes.map((o) => o.kind),
          ['deferred', 'deferred'],
          'served on the current tokens, not 503',
        );
        assert.deepEqual(refreshGrants(provider), before, 'no grant while the store hangs');
      } finally {
        await redis.kill('SIGCONT');
      }
    } finally {
      await graceA.close();
      await graceB.close();
    }
  });

  it('with refresh.outageGrace, tokens expired during an outage: after it, a grant that outlasts the request budget is deferred, not 503', async () => {
    // Every session whose tokens expired while the store was down is refreshed the moment it is
    // back: the grants queue at the provider, and their callers' budgets run out.
    const slow = heldGrants(client);
    const recovering = replica(redis, slow.client, 60_000);
    const fresh = replica(redis, slow.client, 60_000);
    try {
      const session = await expiredSession(client);
      await outageSeenBy(
        redis,
        recovering,
        () => recovering.keyspaces.refreshResults.get('probe'),
        async () => {
          assert.equal((await recovering.refresher.refresh(session, 50)).kind, 'deferred');
        },
      );
      slow.hold();
      // The grants are held until released, so any budget runs out; 1 s leaves a busy machine
      // the time to take the lock and send the grant first.
      const late = await recovering.refresher.refresh(session, 1_000);
      await waitFor('the grant to have started', () => slow.held() === 1);
      assert.equal(late.kind, 'deferred', 'served on its tokens while the grant runs');

      // A replica that saw no outage answers a slow provider as an outage of the provider.
      const other = await expiredSession(client);
      const unseen = await fresh.refresher.refresh(other, 1_000);
      await waitFor('the second grant to have started', () => slow.held() === 2);
      assert.deepEqual(unseen, {
        kind: 'unavailable',
        retryAfterSeconds: 1,
        cause: 'the provider did not answer the refresh in time',
      });

      slow.release();
      await waitFor('the held grant to publish its result', async () => {
        const outcome = await recovering.refresher.refresh(session, 1_000);
        return outcome.kind === 'refreshed';
      });
    } finally {
      slow.release();
      await recovering.close();
      await fresh.close();
    }
  });

  it('with refresh.outageGrace, an outage seen only by other calls (server sessions fail at their load): a grant after it that outlasts the budget is deferred, not 503', async () => {
    const slow = heldGrants(client);
    const recovering = replica(redis, slow.client, 60_000);
    try {
      const session = await expiredSession(client);
      // Only the session store's reads fail meanwhile: no refresh is asked for.
      await outageSeenBy(redis, recovering, () =>
        recovering.store.durable.get('session:x').catch(() => undefined),
      );
      slow.hold();
      const late = await recovering.refresher.refresh(session, 1_000);
      await waitFor('the grant to have started', () => slow.held() === 1);
      assert.equal(late.kind, 'deferred', 'served on its tokens while the grant runs');
      slow.release();
      await waitFor('the held grant to publish its result', async () => {
        const outcome = await recovering.refresher.refresh(session, 1_000);
        return outcome.kind === 'refreshed';
      });
    } finally {
      slow.release();
      await recovering.close();
    }
  });

  it('while the store is down, a token that still works is not refreshed ahead', async () => {
    const session = await expiredSession(client);
    const valid = { ...session, tokens: { ...session.tokens, expiresAt: Date.now() + 30_000 } };
    const before = refreshGrants(provider);
    await redis.kill('SIGKILL');
    try {
      await waitFor('the store to be seen down', async () => {
        await a.keyspaces.refreshResults.get('probe');
        return a.store.degraded();
      });
      assert.equal(
        await a.refresher.refreshAhead(valid),
        undefined,
        'served with the current token',
      );
      assert.equal(a.counted.gated.at(-1), 'store');
    } finally {
      await redis.restart();
    }
    assert.deepEqual(refreshGrants(provider), before, 'no grant while the store was down');
    await waitFor('the store to be back and settled', async () => {
      await a.keyspaces.refreshResults.get('probe');
      return !a.store.degraded();
    });
    // Once the store has settled, the refresh ahead starts again.
    await waitFor('a refresh ahead to run', async () => {
      await a.refresher.refreshAhead(valid);
      return refreshGrants(provider).success > before.success;
    });
  });

  it('a lock holder that died: waiters answer at their own bound, the replica taking over refreshes', async () => {
    const session = await expiredSession(client);
    const id = sha256Base64url(session.tokens.refreshToken!);
    const before = refreshGrants(provider);
    // What a replica killed mid-grant leaves: its lease, running out.
    assert.ok(await a.keyspaces.refreshLocks.setIfAbsent(id, 'dead-replica', LOCK_TTL));
    const started = performance.now();
    assert.deepEqual(await b.refresher.refresh(session, 100), {
      kind: 'unavailable',
      retryAfterSeconds: 1,
      cause: "another replica's refresh of these tokens did not finish in time",
    });
    const waited = performance.now() - started;
    assert.ok(waited < 400, `answered at its bound, not the lease's (${waited.toFixed(0)} ms)`);
    await waitFor(
      'the lease to lapse',
      async () => (await b.keyspaces.refreshLocks.get(id)) === undefined,
    );
    const taken = await b.refresher.refresh(session);
    assert.equal(taken.kind, 'refreshed', 'the user is not logged out');
    // A replica that died after publishing left its result: the next one takes it, no grant.
    assert.ok(await a.keyspaces.refreshLocks.setIfAbsent(id, 'dead-replica', LOCK_TTL));
    const again = await a.refresher.refresh(session);
    assert.equal(refreshTokenOf(again), refreshTokenOf(taken));
    const after = refreshGrants(provider);
    assert.equal(after.success - before.success, 1);
    assert.equal(after.invalid_grant - before.invalid_grant, 0);
  });

  it('with refresh.outageGrace, a lock holder that died: waiters are served on their tokens at their bound, not 503', async () => {
    const graceful = replica(redis, client, 60_000);
    try {
      const session = await expiredSession(client);
      const id = sha256Base64url(session.tokens.refreshToken!);
      assert.ok(await a.keyspaces.refreshLocks.setIfAbsent(id, 'dead-replica', LOCK_TTL));
      const started = performance.now();
      assert.deepEqual(await graceful.refresher.refresh(session, 100), { kind: 'deferred' });
      const waited = performance.now() - started;
      assert.ok(waited < 400, `answered at its bound, not the lease's (${waited.toFixed(0)} ms)`);
      await waitFor(
        'the lease to lapse and the refresh to be taken over',
        async () => (await graceful.refresher.refresh(session, 100)).kind === 'refreshed',
      );
    } finally {
      await graceful.close();
    }
  });
});
