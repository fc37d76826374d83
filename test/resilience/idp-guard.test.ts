/** The provider guard with the real OIDC client and a real OpenID Provider that is stopped and restarted. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { IdpError, IdpUnavailableError } from '../../src/errors.ts';
import { createBreakers } from '../../src/resilience/breakers.ts';
import { createIdpGuard } from '../../src/resilience/idp-guard.ts';
import { loginAndExchange, readyClient, startProvider, timed } from '../oidc/oidc-fixtures.ts';
import { breakersTuning } from './breaker-tuning.ts';
import { captureLog } from './log-capture.ts';
import { metricValue } from './metric-value.ts';

const RESET_MS = 300;

describe('provider guard with the real OIDC client', () => {
  it('never trips on invalid_grant, opens when the provider stops, and closes after it is back', async (t) => {
    const provider = await startProvider();
    const registry = new Registry();
    const breakers = createBreakers({
      registry,
      logger: captureLog().logger,
      ...breakersTuning({
        idp: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: `${RESET_MS}ms` },
      }),
    });
    const token = breakers.idp('web').token;
    const client = await readyClient(provider, {}, { guard: createIdpGuard(breakers.idp('web')) });
    try {
      const { result } = await loginAndExchange(client);
      for (let i = 0; i < 10; i++) {
        await assert.rejects(
          client.refresh('not-a-refresh-token'),
          (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
        );
      }
      assert.equal(token.state(), 'closed', 'a refused grant is a verdict, not an outage');
      assert.equal(
        await metricValue(registry, 'eoa_breaker_failures_total', { breaker: 'idp:web:token' }),
        0,
      );

      await provider.stop();
      // The ten verdicts still sit in the rolling window as answered calls, so it takes more
      // than half of the window failing, not just the volume threshold, to open.
      let failures = 0;
      while (token.state() === 'closed' && failures < 30) {
        await assert.rejects(
          client.refresh(result.tokens.refreshToken!),
          (err) => err instanceof IdpUnavailableError && err.reason === 'network',
        );
        failures += 1;
      }
      t.diagnostic(`opened after ${failures} network failures`);
      assert.equal(token.state(), 'open');
      const [, refusedMs] = await timed(() =>
        assert.rejects(
          client.refresh(result.tokens.refreshToken!),
          (err) =>
            err instanceof IdpUnavailableError &&
            err.reason === 'circuit_open' &&
            err.endpoint === 'token',
        ),
      );
      t.diagnostic(`refused in ${refusedMs} ms while open`);
      assert.ok(refusedMs < 20, `refused in ${refusedMs} ms`);

      await provider.start();
      const tokenCallsBefore = provider.counters().tokenRequests;
      await sleep(RESET_MS + 50);
      const refreshed = await client.refresh(result.tokens.refreshToken!);
      assert.ok(refreshed.tokens.accessToken.length > 0);
      assert.equal(token.state(), 'closed');
      assert.equal(provider.counters().tokenRequests, tokenCallsBefore + 1, 'one probe, one grant');
    } finally {
      client.close();
      breakers.shutdown();
      await provider.close();
    }
  });

  it('opens the discovery breaker at the first failed probe, with the default tuning', async () => {
    const provider = await startProvider();
    const registry = new Registry();
    const breakers = createBreakers({ registry, logger: captureLog().logger, ...breakersTuning() });
    const discovery = breakers.idp('web').discovery;
    const client = await readyClient(provider, {}, { guard: createIdpGuard(breakers.idp('web')) });
    try {
      await client.provider.probe();
      assert.equal(discovery.state(), 'closed');
      await provider.stop();
      await assert.rejects(
        client.provider.probe(),
        (err) => err instanceof IdpUnavailableError && err.reason === 'network',
      );
      assert.equal(discovery.state(), 'open', 'one failed probe is an outage');
      const retryAfter = discovery.retryAfterMs();
      // A probe refused while open tried nothing: it neither fails again nor restarts the wait.
      await assert.rejects(
        client.provider.probe(),
        (err) => err instanceof IdpUnavailableError && err.reason === 'circuit_open',
      );
      assert.ok(discovery.retryAfterMs() <= retryAfter);
      assert.equal(
        await metricValue(registry, 'eoa_breaker_opens_total', { breaker: 'idp:web:discovery' }),
        1,
      );
    } finally {
      client.close();
      breakers.shutdown();
      await provider.close();
    }
  });
});
