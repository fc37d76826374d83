/** Guarded and fallback store backends: over the memory backend with injected faults, and over a real redis-server that is killed and restarted. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createBreakers, type Breakers } from '../../src/resilience/breakers.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { createRedisBackend, type RedisBackend } from '../../src/store/redis-backend.ts';
import { CALL_ANSWER_RESERVE_MS, withDeadline } from '../../src/store/deadline-backend.ts';
import { guardStore, PROBE_KEY, withFallback } from '../../src/store/resilient-backend.ts';
import { redisStore } from '../../src/store/shared-store.ts';
import type { CallBound, StoreBackend } from '../../src/store/store-backend.ts';
import { breakerTuning, breakersTuning } from '../resilience/breaker-tuning.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import { captureLog } from '../resilience/log-capture.ts';
import { metricValue } from '../resilience/metric-value.ts';
import { redisCli, startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import { runStoreContract } from './store-contract.ts';

const RESET_MS = 150;
const LONG = 60_000;
const tuning = breakerTuning({
  volumeThreshold: 3,
  errorThresholdPercentage: 50,
  resetTimeout: `${RESET_MS}ms`,
});

/** The real memory backend behind a switch that makes every call fail like a lost connection. */
function switchable(inner: StoreBackend) {
  let down = false;
  let reached = 0;
  const gate = <T>(op: () => Promise<T>): Promise<T> => {
    reached += 1;
    return down ? Promise.reject(new Error('Connection is closed.')) : op();
  };
  const backend: StoreBackend = {
    get: (k) => gate(() => inner.get(k)),
    set: (k, v, t) => gate(() => inner.set(k, v, t)),
    setIfAbsent: (k, v, t) => gate(() => inner.setIfAbsent(k, v, t)),
    delete: (k) => gate(() => inner.delete(k)),
    deleteIfEquals: (k, v) => gate(() => inner.deleteIfEquals(k, v)),
    take: (k) => gate(() => inner.take(k)),
    expireIfEquals: (k, v, t) => gate(() => inner.expireIfEquals(k, v, t)),
    addMember: (k, m, t) => gate(() => inner.addMember(k, m, t)),
    members: (k) => gate(() => inner.members(k)),
    removeMember: (k, m) => gate(() => inner.removeMember(k, m)),
    close: () => inner.close(),
  };
  return {
    backend,
    inner,
    setDown(value: boolean) {
      down = value;
    },
    reached: () => reached,
  };
}

function setUp(options: { probe?: boolean; probeEveryMs?: number } = {}) {
  const registry = new Registry();
  const log = captureLog();
  const primary = switchable(createMemoryBackend());
  const breakers = createBreakers({
    registry,
    logger: log.logger,
    store: tuning,
    idp: tuning,
    ...(options.probe === true ? { storeProbe: () => primary.backend.get('probe') } : {}),
  });
  const guarded = guardStore(primary.backend, breakers.store);
  const fallback = withFallback(primary.backend, breakers.store, {
    logger: log.logger,
    registry,
    ...(options.probeEveryMs === undefined ? {} : { probeEveryMs: options.probeEveryMs }),
  });
  const close = async () => {
    breakers.shutdown();
    await fallback.close();
    await primary.inner.close();
  };
  return { registry, log, primary, breakers, guarded, fallback, close };
}

async function openBreaker(breakers: Breakers, backend: StoreBackend): Promise<void> {
  for (let i = 0; i < tuning.volumeThreshold; i++) await backend.get('k').catch(() => undefined);
  assert.equal(breakers.store.state(), 'open');
}

// Both decorators must be invisible while the store is healthy.
runStoreContract('guarded memory', () => {
  const memory = createMemoryBackend();
  const breakers = createBreakers({
    registry: new Registry(),
    logger: captureLog().logger,
    ...breakersTuning(),
  });
  return Promise.resolve({
    backend: guardStore(memory, breakers.store),
    close: async () => {
      breakers.shutdown();
      await memory.close();
    },
  });
});
runStoreContract('memory with fallback', () => {
  const memory = createMemoryBackend();
  const breakers = createBreakers({
    registry: new Registry(),
    logger: captureLog().logger,
    ...breakersTuning(),
  });
  const backend = withFallback(memory, breakers.store, {
    logger: captureLog().logger,
    registry: new Registry(),
  });
  return Promise.resolve({
    backend,
    close: async () => {
      breakers.shutdown();
      await backend.close();
      await memory.close();
    },
  });
});

describe('guarded store', () => {
  it('turns an outage into STORE_UNAVAILABLE, then fails fast without calling the store', async () => {
    const { primary, breakers, guarded, close } = setUp();
    try {
      await guarded.set('session', 'sealed', LONG);
      primary.setDown(true);
      await assert.rejects(
        guarded.get('session'),
        (err) =>
          err instanceof StoreUnavailableError &&
          err.reason === 'failure' &&
          err.status === 503 &&
          err.retryAfterSeconds >= 1 &&
          !err.message.includes('sealed'),
      );
      await openBreaker(breakers, guarded);
      const reached = primary.reached();
      await assert.rejects(
        guarded.get('session'),
        (err) => err instanceof StoreUnavailableError && err.reason === 'circuit_open',
      );
      assert.equal(primary.reached(), reached, 'an open breaker does not call the store');

      primary.setDown(false);
      await sleep(RESET_MS + 50);
      assert.equal(await guarded.get('session'), 'sealed', 'the half-open probe goes through');
      assert.equal(breakers.store.state(), 'closed');
    } finally {
      await close();
    }
  });

  it('lets verdicts through unchanged and does not count them', async () => {
    const { breakers, guarded, close } = setUp();
    try {
      for (let i = 0; i < 10; i++) await assert.rejects(guarded.set('k', 'v', -1), RangeError);
      assert.equal(breakers.store.state(), 'closed');
    } finally {
      await close();
    }
  });
});

describe('store with in-memory fallback', () => {
  it('serves from memory while the store is down, logged and exported once, and recovers by itself', async () => {
    const { primary, breakers, fallback, registry, log, close } = setUp({ probe: true });
    try {
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);
      primary.setDown(true);
      for (let i = 0; i < 20; i++) await fallback.set(`mark-${i}`, 'v', LONG);
      assert.equal(breakers.store.state(), 'open');
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 1);
      assert.equal(await fallback.get('mark-7'), 'v');
      assert.equal(await primary.inner.get('mark-7'), undefined, 'the store was never written');

      primary.setDown(false);
      // No traffic: the breaker's own probe finds the store back and closes it.
      await waitFor('store breaker closed', () => breakers.store.state() === 'closed', 2_000);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);
      await fallback.set('after', 'v2', LONG);
      assert.equal(await primary.inner.get('after'), 'v2');

      assert.equal(log.matching(/^store unavailable/).length, 1);
      assert.equal(log.matching(/^store recovered/).length, 1);
    } finally {
      await close();
    }
  });

  it('tells how long ago it was last degraded, also after a degradation of one call', async () => {
    const { primary, fallback, close } = setUp();
    try {
      assert.equal(fallback.msSinceDegraded(), Number.POSITIVE_INFINITY, 'never degraded');
      primary.setDown(true);
      assert.equal(await fallback.get('k'), undefined);
      assert.equal(fallback.msSinceDegraded(), 0, 'degraded now');
      primary.setDown(false);
      await fallback.set('k', 'v', LONG);
      assert.equal(fallback.degraded(), false, 'one answered write ends it');
      const since = fallback.msSinceDegraded();
      assert.ok(since >= 0 && since < 1_000, `ended ${since} ms ago`);
    } finally {
      await close();
    }
  });

  it('counts as degraded from the moment the breaker opens, whichever calls opened it', async () => {
    const { primary, breakers, guarded, fallback, registry, log, close } = setUp({ probe: true });
    try {
      primary.setDown(true);
      // Only durable records (server sessions) are read: nothing goes through the fallback.
      for (let i = 0; i < 5; i++) await guarded.get(`session-${i}`).catch(() => undefined);
      assert.equal(breakers.store.state(), 'open');
      assert.equal(fallback.degraded(), true);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 1);
      assert.equal(log.matching(/^store unavailable/).length, 1);

      primary.setDown(false);
      await waitFor('store breaker closed', () => breakers.store.state() === 'closed', 2_000);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);
      assert.equal(log.matching(/^store recovered/).length, 1);
    } finally {
      await close();
    }
  });

  it('ends a degradation of one failed call by itself, with no traffic, once a probe write reaches the store', async () => {
    const { primary, breakers, fallback, registry, log, close } = setUp({ probeEveryMs: 20 });
    try {
      primary.setDown(true);
      // One lock lost in a blip: too few failures to open the breaker, so no half-open probe.
      assert.equal(await fallback.setIfAbsent('lock', 'a', LONG), true);
      assert.equal(breakers.store.state(), 'closed');
      assert.equal(fallback.degraded(), true);
      const reachedWhileDown = primary.reached();
      await waitFor('a probe of the down store', () => primary.reached() > reachedWhileDown, 2_000);
      assert.equal(fallback.degraded(), true, 'a failed probe does not end it');

      primary.setDown(false);
      await waitFor('the degradation to end without a call', () => !fallback.degraded(), 2_000);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);
      assert.equal(await primary.inner.get(PROBE_KEY), '1', 'the probe was a write');
      assert.equal(log.matching(/^store recovered/).length, 1);
      const reachedAfter = primary.reached();
      await sleep(100);
      assert.equal(primary.reached(), reachedAfter, 'no probe once the store is back');
    } finally {
      await close();
    }
  });

  it('starts no probe once closed, when a call still fails on the store a reload left', async () => {
    const { primary, fallback, close } = setUp({ probeEveryMs: 20 });
    try {
      await fallback.close();
      primary.setDown(true);
      assert.equal(await fallback.get('k'), undefined);
      const reached = primary.reached();
      await sleep(100);
      assert.equal(primary.reached(), reached, 'no probe of a closed store');
    } finally {
      await close();
    }
  });

  it('a call sent during the outage that fails after the store is back does not start another', async () => {
    const registry = new Registry();
    const log = captureLog();
    const inner = createMemoryBackend();
    let down = true;
    let failHeld: (error: Error) => void = () => undefined;
    const held = new Promise<void>((_resolve, reject) => (failHeld = reject));
    // `held` is a write the lost connection keeps until after the store is back.
    const primary: StoreBackend = {
      ...inner,
      set: (k, v, t) =>
        k === 'held'
          ? held
          : down
            ? Promise.reject(new Error('Connection is closed.'))
            : inner.set(k, v, t),
    };
    const breakers = createBreakers({ registry, logger: log.logger, store: tuning, idp: tuning });
    const fallback = withFallback(primary, breakers.store, { logger: log.logger, registry });
    try {
      await fallback.set('lost', 'v', LONG);
      assert.equal(fallback.degraded(), true);
      const late = fallback.set('held', 'v', LONG);
      down = false;
      // Answered writes, enough that one more failure leaves the breaker closed.
      for (let i = 0; i < 3; i++) await fallback.set(`k${i}`, 'v', LONG);
      assert.equal(fallback.degraded(), false, 'a write that reached the store ends it');
      failHeld(new Error('Connection is closed.'));
      await late;
      assert.equal(fallback.degraded(), false, 'the late failure belongs to the outage that ended');
      assert.equal(log.matching(/^store unavailable/).length, 1);
    } finally {
      breakers.shutdown();
      await fallback.close();
      await inner.close();
    }
  });

  it('a probe write the store refuses keeps it degraded while it answers reads', async () => {
    const registry = new Registry();
    const log = captureLog();
    const inner = createMemoryBackend();
    let writes = 0;
    const readsOnly: StoreBackend = {
      ...inner,
      set: () => {
        writes += 1;
        return Promise.reject(new Error('NOREPLICAS'));
      },
    };
    const breakers = createBreakers({ registry, logger: log.logger, store: tuning, idp: tuning });
    const fallback = withFallback(readsOnly, breakers.store, {
      logger: log.logger,
      registry,
      probeEveryMs: 20,
    });
    try {
      await fallback.set('k', 'v', LONG);
      assert.equal(fallback.degraded(), true);
      await waitFor('two probe writes', () => writes >= 3, 2_000);
      assert.equal(fallback.degraded(), true, 'refused probes do not end it');
    } finally {
      breakers.shutdown();
      await fallback.close();
      await inner.close();
    }
  });

  it('stays degraded while writes fail, however many reads the store answers meanwhile', async () => {
    const registry = new Registry();
    const log = captureLog();
    const inner = createMemoryBackend();
    let writesDown = true;
    // Answers reads but refuses writes, as a master with too few replicas for replicaAcks does.
    const readsOnly: StoreBackend = {
      ...inner,
      setIfAbsent: (k, v, t) =>
        writesDown ? Promise.reject(new Error('NOREPLICAS')) : inner.setIfAbsent(k, v, t),
      set: (k, v, t) => (writesDown ? Promise.reject(new Error('NOREPLICAS')) : inner.set(k, v, t)),
    };
    const breakers = createBreakers({ registry, logger: log.logger, store: tuning, idp: tuning });
    const fallback = withFallback(readsOnly, breakers.store, { logger: log.logger, registry });
    try {
      // A lock taken now lives in this process only, and stays so while reads succeed.
      assert.equal(await fallback.setIfAbsent('lock', 'a', LONG), true);
      assert.equal(fallback.degraded(), true);
      for (let i = 0; i < 3; i++) await fallback.get(`k${i}`);
      assert.equal(fallback.degraded(), true, 'a read does not end it while writes fail');
      writesDown = false;
      await fallback.set('k', 'v', LONG);
      assert.equal(fallback.degraded(), false, 'a write that reached the store ends it');
      assert.equal(
        log.lines().filter((line) => line['component'] === 'store').length,
        2,
        'one warning, one all-clear: no flapping',
      );
    } finally {
      breakers.shutdown();
      await fallback.close();
      await inner.close();
    }
  });

  it('keeps one-time operations one-time within the replica during the outage', async () => {
    const { primary, fallback, close } = setUp();
    try {
      primary.setDown(true);
      const wins = await Promise.all(
        Array.from({ length: 20 }, () => fallback.setIfAbsent('state-digest', 'used', LONG)),
      );
      assert.equal(wins.filter(Boolean).length, 1);
      await fallback.set('result', 'r', LONG);
      assert.equal(await fallback.take('result'), 'r');
      assert.equal(await fallback.take('result'), undefined);
    } finally {
      await close();
    }
  });

  it('after recovery still honours what memory took on during the outage, then retires it', async () => {
    const { primary, breakers, fallback, registry, close } = setUp();
    try {
      primary.setDown(true);
      assert.equal(await fallback.setIfAbsent('replay:s1', 'used', LONG), true);
      assert.equal(await fallback.setIfAbsent('lock:rt', 'owner-a', LONG), true);
      await fallback.set('result:rt', 'sealed-result', LONG);
      await fallback.addMember('idx', 'during', LONG);
      await openBreaker(breakers, fallback);

      primary.setDown(false);
      await sleep(RESET_MS + 50);
      assert.equal(await fallback.get('nothing'), undefined, 'the probe call closes the breaker');
      assert.equal(breakers.store.state(), 'closed');
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);

      // A mark made during the outage is not forgotten by this replica.
      assert.equal(await fallback.setIfAbsent('replay:s1', 'again', LONG), false);
      assert.equal(await primary.inner.get('replay:s1'), undefined);
      // A lease taken during the outage is still held, and its owner can release it.
      assert.equal(await fallback.setIfAbsent('lock:rt', 'owner-b', LONG), false);
      assert.equal(await fallback.deleteIfEquals('lock:rt', 'owner-a'), true);
      assert.equal(await fallback.setIfAbsent('lock:rt', 'owner-b', LONG), true);
      assert.equal(await primary.inner.get('lock:rt'), 'owner-b');
      // A result published during the outage still reaches late arrivals, once.
      assert.equal(await fallback.take('result:rt'), 'sealed-result');
      assert.equal(await fallback.take('result:rt'), undefined);
      // Sets are the union; a primary write retires memory's copy of a value.
      await fallback.addMember('idx', 'after', LONG);
      assert.deepEqual([...(await fallback.members('idx'))].sort(), ['after', 'during']);
      await fallback.set('replay:s1', 'fresh', LONG);
      assert.equal(await fallback.get('replay:s1'), 'fresh');
      assert.equal(await fallback.delete('replay:s1'), true);
      assert.equal(await fallback.get('replay:s1'), undefined, 'no stale copy reappears');
    } finally {
      await close();
    }
  });

  it('does not hide verdicts behind the fallback', async () => {
    const { fallback, breakers, registry, close } = setUp();
    try {
      await assert.rejects(fallback.set('k', 'v', 0), RangeError);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);
      assert.equal(breakers.store.state(), 'closed');
    } finally {
      await close();
    }
  });
});

/** A backend whose reads never answer (a hung Redis), counting the calls that reached it. */
function hung(inner: StoreBackend) {
  let reached = 0;
  const backend: StoreBackend = {
    ...inner,
    get: () => {
      reached += 1;
      return new Promise<never>(() => undefined);
    },
  };
  return { backend, reached: () => reached };
}

describe('store calls of one request (CallBound)', () => {
  function setUpHung(callTimeoutMs = LONG) {
    const registry = new Registry();
    const log = captureLog();
    const memory = createMemoryBackend();
    const primary = hung(memory);
    const breakers = createBreakers({ registry, logger: log.logger, store: tuning, idp: tuning });
    // The request's clock, moved by the test; the call timeout is far beyond any request's.
    const clock = { now: 10_000 };
    let timeouts = 0;
    const bounded = withDeadline(primary.backend, {
      timeoutMs: () => callTimeoutMs,
      onTimeout: () => (timeouts += 1),
      now: () => clock.now,
    });
    const guarded = guardStore(bounded, breakers.store);
    const fallback = withFallback(bounded, breakers.store, { logger: log.logger, registry });
    const close = async () => {
      breakers.shutdown();
      await fallback.close();
      await memory.close();
    };
    return { primary, breakers, clock, guarded, fallback, timeouts: () => timeouts, close };
  }

  it("a read whose store call timeout runs out first marks the request's bound and has the store probed", async () => {
    const rig = setUpHung(20);
    try {
      const bound: CallBound = { deadline: rig.clock.now + 1_000, storeTimedOut: false };
      assert.equal(await rig.fallback.get('ended:s1', bound), undefined, 'not known revoked');
      assert.equal(bound.storeTimedOut, true);
      assert.equal(rig.timeouts(), 1, 'the owner is told, to probe the store');
      assert.equal(rig.fallback.degraded(), true, 'the store is taken for down until it answers');
      assert.equal(await rig.fallback.get('results:r1', bound), undefined);
      assert.equal(rig.primary.reached(), 1, "the request's next read did not reach the store");
    } finally {
      await rig.close();
    }
  });

  it("gives up a read when its request's time runs out, whatever the call timeout; the request's later reads do not wait", async () => {
    const rig = setUpHung();
    try {
      // 20 ms left before the request must answer (less what it keeps to answer).
      const bound: CallBound = {
        deadline: rig.clock.now + 20 + CALL_ANSWER_RESERVE_MS,
        storeTimedOut: false,
      };
      assert.equal(await rig.fallback.get('ended:s1', bound), undefined, 'not known revoked');
      assert.equal(bound.storeTimedOut, true, 'the request knows its store call timed out');
      // Cut short by the request's deadline: nothing is said about the store.
      assert.equal(rig.timeouts(), 0, 'no probe: the store was not slower than its timeout');
      assert.equal(rig.fallback.degraded(), false, 'not taken for down');
      assert.equal(rig.primary.reached(), 1);

      // Later reads of the same request: answered at once, without reaching the store.
      assert.equal(await rig.fallback.get('results:r1', bound), undefined);
      await assert.rejects(
        rig.guarded.get('session:s1', bound),
        (error) => error instanceof StoreUnavailableError && error.reason === 'timeout',
      );
      assert.equal(rig.primary.reached(), 1, 'no further call reached the store');
      assert.equal(rig.breakers.store.state(), 'closed', 'the breaker counts store failures only');
    } finally {
      await rig.close();
    }
  });

  it('a request with no time left does not wait at all; another request still asks the store', async () => {
    const rig = setUpHung();
    try {
      const spent: CallBound = { deadline: rig.clock.now, storeTimedOut: false };
      await assert.rejects(rig.guarded.get('session:s1', spent), StoreUnavailableError);
      assert.equal(spent.storeTimedOut, true);
      const other: CallBound = { deadline: rig.clock.now + 10, storeTimedOut: false };
      assert.equal(await rig.fallback.get('ended:s2', other), undefined);
      assert.equal(rig.primary.reached(), 2, "one request's timeout does not spare another's call");
    } finally {
      await rig.close();
    }
  });

  it('a healthy store answers a bounded read with what it holds', async () => {
    const registry = new Registry();
    const memory = createMemoryBackend();
    const breakers = createBreakers({ registry, logger: captureLog().logger, ...breakersTuning() });
    const bounded = withDeadline(memory, { timeoutMs: () => LONG, onTimeout: () => undefined });
    const fallback = withFallback(bounded, breakers.store, {
      logger: captureLog().logger,
      registry,
    });
    try {
      await memory.set('k', 'v', LONG);
      const bound: CallBound = { deadline: performance.now() + 1_000, storeTimedOut: false };
      assert.equal(await fallback.get('k', bound), 'v');
      assert.equal(bound.storeTimedOut, false);
    } finally {
      breakers.shutdown();
      await fallback.close();
      await memory.close();
    }
  });
});

describe('store readiness', () => {
  it('stays ready while the store is unreachable, because its fallback is in force', async () => {
    const { primary, breakers, guarded, close } = setUp();
    const store = redisStore(primary.backend, breakers.store, {
      logger: captureLog().logger,
      registry: new Registry(),
      probe: () => primary.backend.get('probe'),
      callTimeoutMs: () => 1_000,
    });
    try {
      assert.equal(store.waitingFor(), undefined);
      primary.setDown(true);
      await openBreaker(breakers, guarded);
      assert.equal(await store.degradable.get('k'), undefined, 'served from memory');
      assert.equal(store.waitingFor(), undefined);
    } finally {
      await store.close();
      await close();
    }
  });
});

describe('resilient store over a real redis-server', () => {
  let server: RedisProcess;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  it('falls back when Redis is killed, and uses it again within a second of its restart', async (t) => {
    const registry = new Registry();
    const log = captureLog();
    const keyPrefix = `rb-${randomUUID()}:`;
    const redis: RedisBackend = createRedisBackend(
      { url: server.url, keyPrefix, commandTimeout: 300 },
      { logger: log.logger, reconnectMaxDelayMs: 100, connectTimeoutMs: 300 },
    );
    const breakers = createBreakers({
      registry,
      logger: log.logger,
      ...breakersTuning({
        store: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '300ms' },
      }),
      storeProbe: () => redis.ping(),
    });
    const sessions = guardStore(redis, breakers.store);
    const marks = withFallback(redis, breakers.store, { logger: log.logger, registry });
    try {
      await redis.ready();
      await sessions.set('session:shop:1', 'sealed-session', LONG);
      assert.equal(await marks.setIfAbsent('replay:before', 'used', LONG), true);
      assert.equal(await redisCli(server.port, 'get', `${keyPrefix}replay:before`), 'used');

      await server.kill('SIGKILL');
      const outageStarted = performance.now();
      await assert.rejects(sessions.get('session:shop:1'), StoreUnavailableError);
      assert.equal(await marks.setIfAbsent('replay:during', 'used', LONG), true);
      assert.equal(await marks.setIfAbsent('replay:during', 'used', LONG), false);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 1);
      for (let i = 0; i < 5; i++) await marks.get(`x${i}`);
      assert.equal(breakers.store.state(), 'open');
      t.diagnostic(
        `breaker open ${Math.round(performance.now() - outageStarted)} ms into the outage`,
      );
      const refusedAt = performance.now();
      await assert.rejects(
        sessions.get('session:shop:1'),
        (err) => err instanceof StoreUnavailableError && err.reason === 'circuit_open',
      );
      assert.ok(performance.now() - refusedAt < 50, 'server sessions fail fast while open');

      const restartIssued = performance.now();
      await server.restart();
      const restarted = performance.now();
      // Nothing calls the store from here on: the breaker's own probe must notice the recovery.
      await waitFor('store breaker closed', () => breakers.store.state() === 'closed', 5_000);
      const closedAfter = Math.round(performance.now() - restarted);
      t.diagnostic(
        `breaker closed ${closedAfter} ms after redis-server was ready again ` +
          `(${Math.round(performance.now() - restartIssued)} ms after the restart began)`,
      );
      assert.ok(closedAfter < 1_000, `closed ${closedAfter} ms after the restart`);
      assert.equal(await metricValue(registry, 'eoa_store_degraded'), 0);

      // The primary is used again: writes land in Redis, reads come from it.
      await sessions.set('session:shop:2', 'sealed-2', LONG);
      assert.equal(await redisCli(server.port, 'get', `${keyPrefix}session:shop:2`), 'sealed-2');
      assert.equal(await marks.setIfAbsent('replay:after', 'used', LONG), true);
      assert.equal(await redisCli(server.port, 'get', `${keyPrefix}replay:after`), 'used');
      // The mark made during the outage lives only in this replica's memory, and still holds.
      assert.equal(await marks.setIfAbsent('replay:during', 'again', LONG), false);
      assert.equal(await redisCli(server.port, 'exists', `${keyPrefix}replay:during`), '0');

      const storeLines = log.lines().filter((line) => line['component'] === 'store');
      assert.deepEqual(
        storeLines.map((line) => line['level']),
        ['warn', 'info'],
      );
      const breakerStates = log
        .lines()
        .filter((line) => line['component'] === 'breaker')
        .map((line) => line['state']);
      assert.deepEqual(breakerStates, ['open', 'closed'], 'one warning, one all-clear');
      assert.ok(!log.text().includes('sealed-session'), 'no stored value is ever logged');
      assert.equal(await metricValue(registry, 'eoa_breaker_opens_total', { breaker: 'store' }), 1);
    } finally {
      breakers.shutdown();
      await marks.close();
      await redis.close();
    }
  });

  it('finds a hung Redis (SIGSTOP) within the call timeout: no call waits longer, the breaker opens at once', async (t) => {
    const registry = new Registry();
    const log = captureLog();
    const keyPrefix = `rb-${randomUUID()}:`;
    const callTimeoutMs = 40;
    // commandTimeout of a second: without the call timeout, every call would wait that long.
    const redis: RedisBackend = createRedisBackend(
      { url: server.url, keyPrefix, commandTimeout: 1_000 },
      { logger: log.logger, reconnectMaxDelayMs: 100, connectTimeoutMs: 300 },
    );
    const breakers = createBreakers({
      registry,
      logger: log.logger,
      // The defaults' window: a rolling count alone would take seconds to open.
      ...breakersTuning({ store: { resetTimeout: '300ms' } }),
      storeProbe: () => redis.ping(),
    });
    const store = redisStore(redis, breakers.store, {
      logger: log.logger,
      registry,
      probe: () => redis.ping(),
      callTimeoutMs: () => callTimeoutMs,
    });
    let frozen = false;
    try {
      await redis.ready();
      await store.durable.set('session:shop:1', 'sealed-session', LONG);
      await server.kill('SIGSTOP');
      frozen = true;

      const slowest = { ms: 0 };
      const timed = async <T>(call: () => Promise<T>): Promise<T> => {
        const started = performance.now();
        try {
          return await call();
        } finally {
          slowest.ms = Math.max(slowest.ms, performance.now() - started);
        }
      };
      // Revocation-style reads fall back to memory ("not known") within the call timeout.
      assert.equal(await timed(() => store.degradable.get('ended:s1')), undefined);
      // Server sessions: 503 within the call timeout, never a wait for commandTimeout.
      await assert.rejects(
        timed(() => store.durable.get('session:shop:1')),
        (error) => error instanceof StoreUnavailableError,
      );
      // The probe that follows the first timeout times out too: the breaker opens.
      await waitFor('store breaker open', () => breakers.store.state() === 'open', 1_000);
      assert.equal(store.degraded(), true);
      const openedIn = slowest.ms;
      for (let i = 0; i < 20; i++) {
        assert.equal(await timed(() => store.degradable.get(`ended:s${i}`)), undefined);
        await assert.rejects(
          timed(() => store.durable.get('session:shop:1')),
          StoreUnavailableError,
        );
      }
      t.diagnostic(
        `slowest call while hung: ${Math.round(slowest.ms)} ms (call timeout ${callTimeoutMs} ms)`,
      );
      assert.ok(openedIn < callTimeoutMs + 60, `first calls took ${openedIn} ms`);
      assert.ok(slowest.ms < callTimeoutMs + 60, `slowest call ${slowest.ms} ms`);
      const opened = log
        .lines()
        .find((line) => line['msg'] === 'circuit breaker opened: calls fail fast');
      assert.match(String(opened?.['reason']), /no answer within 40ms/);

      await server.kill('SIGCONT');
      frozen = false;
      await waitFor('store breaker closed', () => breakers.store.state() === 'closed', 5_000);
      assert.equal(await store.durable.get('session:shop:1'), 'sealed-session', 'nothing lost');
      assert.equal(store.degraded(), false);
    } finally {
      if (frozen) await server.kill('SIGCONT');
      breakers.shutdown();
      await store.close();
    }
  });

  it('does not open the breaker for one slow command when the store answers its probe', async () => {
    const registry = new Registry();
    const log = captureLog();
    const redis: RedisBackend = createRedisBackend(
      { url: server.url, keyPrefix: `rb-${randomUUID()}:`, commandTimeout: 1_000 },
      { logger: log.logger },
    );
    const breakers = createBreakers({
      registry,
      logger: log.logger,
      ...breakersTuning({}),
      storeProbe: () => redis.ping(),
    });
    let slowOnce = true;
    // One command slowed down in front of Redis (as a big value or a busy moment would).
    const slowFirst: StoreBackend = {
      ...redis,
      get: async (key) => {
        if (slowOnce) {
          slowOnce = false;
          await sleep(120);
        }
        return redis.get(key);
      },
    };
    const store = redisStore(slowFirst, breakers.store, {
      logger: log.logger,
      registry,
      probe: () => redis.ping(),
      callTimeoutMs: () => 40,
    });
    try {
      await redis.ready();
      assert.equal(await store.degradable.get('k'), undefined);
      // The probe after the timeout answered: still closed, the next call goes to Redis.
      await redis.set('k', 'v', LONG);
      await waitFor('probe settled', async () => (await store.degradable.get('k')) === 'v', 1_000);
      assert.equal(breakers.store.state(), 'closed');
    } finally {
      breakers.shutdown();
      await store.close();
    }
  });
});
