/** Breakers against a fault-injecting dependency: opening, fast rejects, probing, closing, logs, metrics. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { AuthzError } from '../../src/errors.ts';
import type { LogLevel } from '../../src/observability/logger.ts';
import {
  IdpError,
  IdpUnavailableError,
  InternalError,
  StateMismatchError,
  TokenInvalidError,
} from '../../src/errors.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createBreaker } from '../../src/resilience/breaker.ts';
import { createBreakerMetrics } from '../../src/resilience/breaker-metrics.ts';
import { createBreakers } from '../../src/resilience/breakers.ts';
import { createIdpGuard } from '../../src/resilience/idp-guard.ts';
import { isOutage, isUnreplicated } from '../../src/resilience/outage.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import { breakerTuning, breakersTuning } from './breaker-tuning.ts';
import { captureLog } from './log-capture.ts';
import { metricValue } from './metric-value.ts';
import { waitFor } from '../support/redis-servers.ts';

const RESET_MS = 150;
const tuning = breakerTuning({
  volumeThreshold: 4,
  errorThresholdPercentage: 50,
  resetTimeout: `${RESET_MS}ms`,
  rollingWindow: '10s',
});

type Mode = 'up' | 'down' | 'refusing';

/** A provider endpoint whose behaviour the test switches; counts the calls that reached it. */
function faultyEndpoint() {
  let mode: Mode = 'up';
  let reached = 0;
  let delayMs = 0;
  return {
    set(next: Mode, options: { delayMs?: number } = {}) {
      mode = next;
      delayMs = options.delayMs ?? 0;
    },
    reached: () => reached,
    call: async (): Promise<string> => {
      reached += 1;
      if (delayMs > 0) await sleep(delayMs);
      if (mode === 'down') throw new IdpUnavailableError('token', 'network');
      if (mode === 'refusing') throw new IdpError('token', 'invalid_grant', { httpStatus: 400 });
      return 'tokens';
    },
  };
}

function setUp(logLevel: LogLevel = 'info') {
  const registry = new Registry();
  const log = captureLog(logLevel);
  const breakers = createBreakers({
    registry,
    logger: log.logger,
    store: tuning,
    idp: tuning,
  });
  const endpoint = faultyEndpoint();
  const guard = createIdpGuard(breakers.idp('shop'));
  const value = (name: string, breaker = 'idp:shop:token') =>
    metricValue(registry, name, { breaker });
  return { registry, log, breakers, endpoint, guard, value };
}

async function failTimes(n: number, call: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) await assert.rejects(call());
}

describe('breaker', () => {
  it('opens once the volume and error thresholds are crossed, then refuses at once', async () => {
    const { breakers, endpoint, guard, value } = setUp();
    const token = breakers.idp('shop').token;
    try {
      endpoint.set('down');
      await failTimes(3, () => guard('token', endpoint.call));
      assert.equal(token.state(), 'closed', 'below the volume threshold it stays closed');
      await assert.rejects(
        guard('token', endpoint.call),
        (err) => err instanceof IdpUnavailableError && err.reason === 'network',
      );
      assert.equal(token.state(), 'open');
      assert.equal(endpoint.reached(), 4);

      const started = performance.now();
      for (let i = 0; i < 50; i++) {
        await assert.rejects(
          guard('token', endpoint.call),
          (err) =>
            err instanceof IdpUnavailableError &&
            err.reason === 'circuit_open' &&
            err.endpoint === 'token' &&
            err.code === 'IDP_UNAVAILABLE' &&
            err.status === 503,
        );
      }
      assert.ok(performance.now() - started < 100, 'fifty refusals take no time');
      assert.equal(endpoint.reached(), 4, 'the endpoint is not called while open');

      assert.equal(await value('eoa_breaker_state'), 2);
      assert.equal(await value('eoa_breaker_opens_total'), 1);
      assert.equal(await value('eoa_breaker_failures_total'), 4);
      assert.equal(await value('eoa_breaker_rejects_total'), 50);
    } finally {
      breakers.shutdown();
    }
  });

  it('lets one probe through after the reset timeout and closes when it succeeds', async () => {
    const { breakers, endpoint, guard, value } = setUp();
    const token = breakers.idp('shop').token;
    try {
      endpoint.set('down');
      await failTimes(4, () => guard('token', endpoint.call));
      assert.equal(token.state(), 'open');
      await sleep(RESET_MS + 50);
      assert.equal(token.state(), 'half_open');
      assert.equal(await value('eoa_breaker_state'), 1);

      endpoint.set('up', { delayMs: 50 });
      const probe = guard('token', endpoint.call);
      // While the probe is in flight, everybody else is still refused.
      await assert.rejects(
        guard('token', endpoint.call),
        (err) => err instanceof IdpUnavailableError && err.reason === 'circuit_open',
      );
      assert.equal(await probe, 'tokens');
      assert.equal(token.state(), 'closed');
      assert.equal(await value('eoa_breaker_state'), 0);
      assert.equal(endpoint.reached(), 5, 'exactly one probe reached the endpoint');
      endpoint.set('up');
      assert.equal(await guard('token', endpoint.call), 'tokens');
    } finally {
      breakers.shutdown();
    }
  });

  it('opens again at once when the probe fails', async () => {
    const { breakers, endpoint, guard, value } = setUp();
    const token = breakers.idp('shop').token;
    try {
      endpoint.set('down');
      await failTimes(4, () => guard('token', endpoint.call));
      await sleep(RESET_MS + 50);
      assert.equal(token.state(), 'half_open');
      await assert.rejects(
        guard('token', endpoint.call),
        (err) => err instanceof IdpUnavailableError && err.reason === 'network',
      );
      assert.equal(token.state(), 'open');
      assert.equal(await value('eoa_breaker_state'), 2);
      // One outage, one open counted: failed probes do not inflate the count.
      assert.equal(await value('eoa_breaker_opens_total'), 1);
      assert.equal(endpoint.reached(), 5);
    } finally {
      breakers.shutdown();
    }
  });

  it('does not count OAuth errors such as invalid_grant, nor token verdicts, as failures', async () => {
    const { breakers, endpoint, guard, value } = setUp();
    const token = breakers.idp('shop').token;
    try {
      endpoint.set('refusing');
      for (let i = 0; i < 40; i++) {
        await assert.rejects(
          guard('token', endpoint.call),
          (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
        );
      }
      for (let i = 0; i < 10; i++) {
        await assert.rejects(
          guard('token', () => Promise.reject(new TokenInvalidError('id_token', 'nonce'))),
          TokenInvalidError,
        );
      }
      assert.equal(token.state(), 'closed');
      assert.equal(await value('eoa_breaker_failures_total'), 0);
      assert.equal(await value('eoa_breaker_opens_total'), 0);
      assert.equal(endpoint.reached(), 40);
    } finally {
      breakers.shutdown();
    }
  });

  it('does not count writes too few replicas confirmed: the store still serves reads', async () => {
    const { breakers, value } = setUp();
    const unreplicated = Object.assign(
      new Error('redis set: 0 of 1 required replicas hold the writes'),
      { code: 'REDIS_NOT_REPLICATED' },
    );
    try {
      for (let i = 0; i < 40; i++) {
        await assert.rejects(
          breakers.store.run(() => Promise.reject(unreplicated)),
          (error) => error === unreplicated,
        );
      }
      assert.equal(breakers.store.state(), 'closed');
      assert.equal(await value('eoa_breaker_failures_total', 'store'), 0);
      assert.equal(await breakers.store.run(() => Promise.resolve('read')), 'read');
    } finally {
      breakers.shutdown();
    }
  });

  it('an OAuth error answering the half-open probe closes the breaker: the provider is back', async () => {
    const { breakers, endpoint, guard } = setUp();
    const token = breakers.idp('shop').token;
    try {
      endpoint.set('down');
      await failTimes(4, () => guard('token', endpoint.call));
      await sleep(RESET_MS + 50);
      endpoint.set('refusing');
      await assert.rejects(guard('token', endpoint.call), IdpError);
      assert.equal(token.state(), 'closed');
    } finally {
      breakers.shutdown();
    }
  });

  it('logs each state change once, never per refused call; an outage is one warning and one all-clear', async () => {
    const { breakers, endpoint, guard, log } = setUp('debug');
    try {
      endpoint.set('down');
      await failTimes(4, () => guard('token', endpoint.call));
      await failTimes(100, () => guard('token', endpoint.call));
      await sleep(RESET_MS + 50);
      await failTimes(1, () => guard('token', endpoint.call)); // the probe fails
      await failTimes(100, () => guard('token', endpoint.call));
      await sleep(RESET_MS + 50);
      endpoint.set('up');
      await guard('token', endpoint.call);
      for (let i = 0; i < 20; i++) await guard('token', endpoint.call);

      const changes = log.lines().filter((line) => line['component'] === 'breaker');
      assert.deepEqual(
        changes.map((line) => [line['breaker'], line['previous'], line['state'], line['level']]),
        [
          ['idp:shop:token', 'closed', 'open', 'warn'],
          ['idp:shop:token', 'open', 'half_open', 'debug'],
          ['idp:shop:token', 'half_open', 'open', 'debug'],
          ['idp:shop:token', 'open', 'half_open', 'debug'],
          ['idp:shop:token', 'half_open', 'closed', 'info'],
        ],
      );
      assert.equal(changes[0]?.['app'], 'shop');
      assert.equal(changes[0]?.['failures'], 4);
      assert.ok(Number(changes[4]?.['openForMs']) >= 2 * RESET_MS);
    } finally {
      breakers.shutdown();
    }
  });

  it('keeps the provider endpoints apart: revocation failures never stop token calls', async () => {
    const { breakers, endpoint, guard } = setUp();
    const shop = breakers.idp('shop');
    try {
      const down = () => Promise.reject(new IdpUnavailableError('revocation', 'timeout'));
      await failTimes(4, () => guard('revocation', down));
      assert.equal(shop.revocation.state(), 'open');
      assert.equal(shop.token.state(), 'closed');
      assert.equal(await guard('token', endpoint.call), 'tokens');
      await assert.rejects(
        guard('revocation', endpoint.call),
        (err) =>
          err instanceof IdpUnavailableError &&
          err.endpoint === 'revocation' &&
          err.reason === 'circuit_open',
      );
    } finally {
      breakers.shutdown();
    }
  });

  it('guards discovery and JWKS with one breaker, naming the refused endpoint', async () => {
    const { breakers, guard } = setUp();
    try {
      const down = () => Promise.reject(new IdpUnavailableError('discovery', 'network'));
      await failTimes(4, () => guard('discovery', down));
      assert.equal(breakers.idp('shop').discovery.state(), 'open');
      await assert.rejects(
        guard('jwks', () => Promise.resolve('keys')),
        (err) =>
          err instanceof IdpUnavailableError &&
          err.endpoint === 'jwks' &&
          err.reason === 'circuit_open',
      );
    } finally {
      breakers.shutdown();
    }
  });

  it('the introspection breaker refuses with IDP_UNAVAILABLE (503), not a token verdict', async () => {
    const { breakers } = setUp();
    const introspection = breakers.idp('shop').introspection;
    try {
      const down = () => Promise.reject(new Error('connect ECONNREFUSED'));
      await failTimes(4, () => introspection.run(down));
      await assert.rejects(
        introspection.run(() => Promise.resolve('active')),
        (err) => err instanceof AuthzError && err.code === 'IDP_UNAVAILABLE' && err.status === 503,
      );
    } finally {
      breakers.shutdown();
    }
  });

  it('the store breaker refuses with STORE_UNAVAILABLE and a Retry-After from its reset timeout', async () => {
    const registry = new Registry();
    let t = 1_000_000;
    const breakers = createBreakers({
      registry,
      logger: captureLog().logger,
      store: { ...tuning, resetTimeout: 4_000 },
      idp: tuning,
      now: () => t,
    });
    try {
      const down = () => Promise.reject(new Error('Connection is closed.'));
      await failTimes(4, () => breakers.store.run(down));
      t += 1_500;
      assert.equal(breakers.store.retryAfterMs(), 2_500);
      await assert.rejects(
        breakers.store.run(() => Promise.resolve('v')),
        (err) =>
          err instanceof StoreUnavailableError &&
          err.code === 'STORE_UNAVAILABLE' &&
          err.status === 503 &&
          err.reason === 'circuit_open' &&
          err.retryAfterSeconds === 3,
      );
    } finally {
      breakers.shutdown();
    }
  });

  it('runs the probe as soon as it goes half-open, so it recovers without traffic', async () => {
    const registry = new Registry();
    let probes = 0;
    const breakers = createBreakers({
      registry,
      logger: captureLog().logger,
      store: tuning,
      idp: tuning,
      storeProbe: () => {
        probes += 1;
        return Promise.resolve();
      },
    });
    try {
      await failTimes(4, () => breakers.store.run(() => Promise.reject(new Error('ECONNRESET'))));
      assert.equal(breakers.store.state(), 'open');
      await sleep(RESET_MS + 80);
      assert.equal(probes, 1);
      assert.equal(breakers.store.state(), 'closed');
      assert.equal(await metricValue(registry, 'eoa_breaker_state', { breaker: 'store' }), 0);
    } finally {
      breakers.shutdown();
    }
  });

  it('probes at once when told the dependency is back (a reconnection), without waiting its reset timeout', async () => {
    const registry = new Registry();
    const log = captureLog();
    let probes = 0;
    let answers = false;
    const breakers = createBreakers({
      registry,
      logger: log.logger,
      // A reset timeout no test waits for: only probeNow can close it.
      store: { ...tuning, resetTimeout: 3_600_000 },
      idp: tuning,
      storeProbe: () => {
        probes += 1;
        return answers ? Promise.resolve() : Promise.reject(new Error('ECONNREFUSED'));
      },
    });
    try {
      breakers.store.probeNow();
      assert.equal(probes, 0, 'no probe while closed');
      breakers.store.trip('test');
      assert.equal(breakers.store.state(), 'open');

      breakers.store.probeNow();
      await waitFor('the failed probe', () => probes === 1);
      await Promise.resolve();
      assert.equal(breakers.store.state(), 'open', 'a probe that fails leaves it open');

      answers = true;
      breakers.store.probeNow();
      breakers.store.probeNow();
      await waitFor('closed', () => breakers.store.state() === 'closed', 1_000);
      assert.equal(probes, 2, 'one probe at a time');
      assert.ok(
        log.lines().some((line) => line['msg'] === 'circuit breaker closed: dependency recovered'),
      );
      assert.equal(await metricValue(registry, 'eoa_breaker_state', { breaker: 'store' }), 0);
    } finally {
      breakers.shutdown();
    }
  });

  it('exports a series per breaker as soon as it is built, labelled by app and kind only', async () => {
    const registry = new Registry();
    const breakers = createBreakers({
      registry,
      logger: captureLog().logger,
      ...breakersTuning(),
    });
    const series = async () => (await registry.getSingleMetric('eoa_breaker_state')!.get()).values;
    try {
      breakers.idp('a');
      breakers.idp('b');
      const values = await series();
      assert.deepEqual(values.map((v) => v.labels['breaker']).sort(), [
        'idp:a:discovery',
        'idp:a:introspection',
        'idp:a:revocation',
        'idp:a:token',
        'idp:b:discovery',
        'idp:b:introspection',
        'idp:b:revocation',
        'idp:b:token',
        'store',
      ]);
      assert.ok(values.every((v) => v.value === 0));
      // A reloaded config may add an app; its breakers appear on first use, once.
      breakers.idp('c');
      breakers.idp('c');
      assert.equal((await series()).length, 13);
    } finally {
      breakers.shutdown();
    }
  });

  it('takes its tuning and defaults from the config, which reports every bad option at once, by path', () => {
    const parsed = configSchema.shape.breakers.safeParse({
      store: { errorThresholdPercentage: 0, resetTimeout: '0ms' },
      idp: { volumeThreshold: 1.5, rollingWindow: '5ms' },
    });
    assert.equal(parsed.success, false);
    assert.deepEqual(
      parsed.error.issues.map((issue) => [issue.path.join('.'), issue.message]),
      [
        ['store.errorThresholdPercentage', 'Too small: expected number to be >0'],
        ['store.resetTimeout', 'must be longer than 0ms'],
        ['idp.volumeThreshold', 'Invalid input: expected int, received number'],
        ['idp.rollingWindow', 'must be at least 10ms'],
      ],
    );
    assert.deepEqual(breakerTuning(), {
      errorThresholdPercentage: 50,
      volumeThreshold: 5,
      rollingWindow: 10_000,
      resetTimeout: 1_000,
    });
    assert.equal(breakerTuning({}, 'idp').resetTimeout, 5_000);
  });

  it('after shutdown a breaker refuses instead of calling', async () => {
    const registry = new Registry();
    const breaker = createBreaker(tuning, {
      name: 'store',
      logger: captureLog().logger,
      series: createBreakerMetrics(registry)('store'),
      openError: () => new StoreUnavailableError('circuit_open'),
    });
    breaker.shutdown();
    let called = false;
    await assert.rejects(
      breaker.run(() => {
        called = true;
        return Promise.resolve();
      }),
      StoreUnavailableError,
    );
    assert.equal(called, false);
  });
});

describe('isOutage', () => {
  it('counts unavailability and transport failures, not verdicts or our own mistakes', () => {
    const replyError = (message: string) =>
      Object.assign(new Error(message), { name: 'ReplyError' });
    const outages: unknown[] = [
      new IdpUnavailableError('token', 'timeout'),
      new StoreUnavailableError('failure'),
      new Error('connect ECONNREFUSED 127.0.0.1:6390'),
      new Error('Command timed out'),
      new TypeError('fetch failed', { cause: new Error('ECONNRESET') }),
      replyError('LOADING Redis is loading the dataset in memory'),
      replyError('READONLY You cannot write against a read only replica.'),
      replyError('CLUSTERDOWN The cluster is down'),
      // Refused credentials (a rotated password, a changed ACL user): nothing works until fixed.
      replyError('NOAUTH Authentication required.'),
      replyError('WRONGPASS invalid username-password pair or user is disabled.'),
      replyError("NOPERM User authz has no permissions to run the 'get' command"),
      replyError(
        'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.',
      ),
      Object.assign(new Error('redis get failed: Connection is closed.'), {
        code: 'REDIS_UNAVAILABLE',
      }),
      Object.assign(new Error('redis get failed: Command timed out'), { code: 'REDIS_TIMEOUT' }),
      'a thrown string',
    ];
    const verdicts: unknown[] = [
      new IdpError('token', 'invalid_grant'),
      new TokenInvalidError('id_token', 'aud'),
      new StateMismatchError(),
      new InternalError('x'),
      replyError('WRONGTYPE Operation against a key holding the wrong kind of value'),
      // Only a reply that starts with the code counts: not one that merely mentions it.
      replyError('ERR unknown command NOAUTH'),
      replyError('noauth lower case is not a Redis error code'),
      new RangeError('ttlMs must be a positive number of milliseconds'),
      new TypeError('operation against a key holding a set'),
      Object.assign(new Error('redis set failed: WRONGTYPE'), { code: 'REDIS_REPLY' }),
    ];
    for (const error of outages) assert.equal(isOutage(error), true, String(error));
    for (const error of verdicts) assert.equal(isOutage(error), false, String(error));
  });

  it('an unreplicated write is an outage for that write, which breakers leave uncounted', () => {
    const unreplicated = Object.assign(new Error('redis set: 0 of 1 replicas confirmed'), {
      code: 'REDIS_NOT_REPLICATED',
    });
    assert.equal(isOutage(unreplicated), true);
    assert.equal(isUnreplicated(unreplicated), true);
    for (const other of [new Error('Command timed out'), new StoreUnavailableError('failure')]) {
      assert.equal(isUnreplicated(other), false);
    }
  });
});

describe('retune (a config reload)', () => {
  it('applies resetTimeout and errorThresholdPercentage at once and names the fixed keys', () => {
    let now = 1_000_000;
    const log = captureLog();
    const breakers = createBreakers({
      registry: new Registry(),
      logger: log.logger,
      ...breakersTuning({ store: { resetTimeout: '1s' }, idp: { resetTimeout: '1s' } }),
      now: () => now,
    });
    try {
      const idp = breakers.idp('shop');
      const restart = breakers.retune(
        breakerTuning({ resetTimeout: '30s', volumeThreshold: 50, rollingWindow: '1m' }),
        breakerTuning({ resetTimeout: '40s' }, 'idp'),
      );
      assert.deepEqual(restart, ['breakers.store.volumeThreshold', 'breakers.store.rollingWindow']);
      breakers.store.trip('test');
      idp.token.trip('test');
      now += 1_000;
      assert.equal(breakers.store.retryAfterMs(), 29_000, 'the new reset timeout counts');
      assert.equal(idp.token.retryAfterMs(), 39_000);
      // Breakers built after the reload (a provider added by it) take the new tuning too.
      const later = breakers.idp('later');
      later.discovery.trip('test');
      assert.equal(later.discovery.retryAfterMs(), 40_000);
      assert.equal(
        log.matching(/circuit breaker opened/).find((l) => l['breaker'] === 'store')?.['retryInMs'],
        30_000,
      );
    } finally {
      breakers.shutdown();
    }
  });
});
