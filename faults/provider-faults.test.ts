import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { deniedHeader, locationOf, statusOf } from '../test/support/browser.ts';
import { waitFor } from '../test/support/redis-servers.ts';
import {
  ORIGIN,
  PROBE_INTERVAL,
  REQUEST_BUDGET_MS,
  TRANSPORT_ALLOWANCE_MS,
} from './support/rig.ts';
import { assertDoneWhen, runRow, type FaultContext } from './support/row.ts';
import { parseDuration } from '../src/config/duration.ts';

// The provider misbehaves behind the TCP proxy its issuer URL names, while 20 users browse two
// replicas sharing one redis-server.

const probeIntervalMs = parseDuration(PROBE_INTERVAL)!;

/** What a new visitor's first navigation got: `302 provider`, `503 retry-after`, … */
function loginStart(outcome: Parameters<typeof statusOf>[0], issuer: string): string {
  const status = statusOf(outcome);
  if (status === 302)
    return (locationOf(outcome) ?? '').startsWith(issuer) ? '302 provider' : '302';
  if (status === 503 && deniedHeader(outcome, 'retry-after') !== undefined)
    return '503 retry-after';
  return String(status);
}

/** Rotates the provider's signing key mid-traffic, then logs new users in under the new key. */
async function rotation(context: FaultContext, keepKid: boolean): Promise<void> {
  await context.rig.provider.rotateSigningKey({ keepKid });
  // Every session refreshes (and gets an ID token signed with the new key) within 4 s.
  await sleep(5_000);
  context.extra['newLoginsAfterRotation'] = `${await context.logInMore(5)} of 5`;
}

describe('provider faults', () => {
  it('provider slow: 6 s per call while access tokens fall due', async () => {
    const report = await runRow({
      row: 'Provider slow (6 s per token call)',
      scenario:
        'every answer of the provider delayed 6 s at the proxy for 20 s (the provider rotates at once, the replica hears 6 s later); 20 s access tokens refreshed 10 s ahead (refresh.skew 10s; the default 60s skew against tokens of minutes, scaled)',
      rig: { store: 'redis', accessTokenTtlSeconds: 20, refresh: { skew: '10s' } },
      recoveryMs: 7_000,
      async fault({ rig }) {
        rig.proxy.setLatency('responses', 6_000);
        await sleep(20_000);
        rig.proxy.setLatency('responses', 0);
      },
    });
    assertDoneWhen(report);
  });

  it('provider rotates its signing key (new kid)', async () => {
    const report = await runRow({
      row: 'Provider rotates its signing key',
      scenario:
        'RS256 key replaced under a new kid; 4 s access tokens, refresh.skew 2s; 5 new logins after',
      rig: { store: 'redis', accessTokenTtlSeconds: 4 },
      fault: (context) => rotation(context, false),
    });
    assertDoneWhen(report);
  });

  it('provider changes its key but keeps the kid', async () => {
    const report = await runRow({
      row: 'Provider changes its key, keeps the kid',
      scenario:
        'RS256 key replaced under the same kid; 4 s access tokens, refresh.skew 2s; 5 new logins after',
      rig: { store: 'redis', accessTokenTtlSeconds: 4 },
      fault: (context) => rotation(context, true),
    });
    assertDoneWhen(report);
  });

  it('provider down: new logins get 503 with Retry-After, sessions carry on', async () => {
    const graceMs = 2 * probeIntervalMs;
    const report = await runRow({
      row: 'Provider down (8 s for 40 s)',
      scenario: `every connection to the provider refused for 8 s (the table's 40 s, scaled with oidc.probeInterval ${PROBE_INTERVAL} for 10s); a new visitor every 250 ms; ${graceMs} ms after the outage began every one must get 503 with Retry-After`,
      rig: { store: 'redis' },
      async fault({ rig, extra, newBrowser }) {
        rig.proxy.refuse(true);
        rig.proxy.dropAll();
        const began = Date.now();
        const starts: Record<string, number> = {};
        const afterGrace: Record<string, number> = {};
        while (Date.now() - began < 8_000) {
          const outcome = await newBrowser().request(`${ORIGIN}/`);
          const got = loginStart(outcome, rig.provider.issuer);
          starts[got] = (starts[got] ?? 0) + 1;
          if (Date.now() - began > graceMs) afterGrace[got] = (afterGrace[got] ?? 0) + 1;
          await sleep(250);
        }
        rig.proxy.refuse(false);
        const restored = Date.now();
        extra['loginStartsDuringOutage'] = starts;
        extra['loginStartsAfterGrace'] = afterGrace;
        // Logins work again once the replicas see the provider back.
        await waitFor(
          'a login to work again',
          async () =>
            (await newBrowser()
              .request(`${ORIGIN}/`)
              .then((o) => loginStart(o, rig.provider.issuer))) === '302 provider',
        );
        extra['loginsBackAfterMs'] = Date.now() - restored;
      },
    });
    const afterGrace = report.extra['loginStartsAfterGrace'] as Record<string, number>;
    assert.deepEqual(
      Object.keys(afterGrace),
      ['503 retry-after'],
      `login starts while down: ${JSON.stringify(afterGrace)}`,
    );
    assertDoneWhen(report);
  });

  it('a callback arriving during a provider blip is answered 503 and completes on retry', async () => {
    const report = await runRow({
      row: 'Callback during a provider blip',
      scenario:
        '10 users authenticated at the provider; the provider refuses connections while their callbacks arrive, then is back 2 s later and each browser retries once',
      rig: { store: 'redis' },
      async fault({ rig, extra, newBrowser }) {
        const pending = await Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const browser = newBrowser();
            const { callbackUrl } = await browser.startAndAuthenticate(
              `${ORIGIN}/`,
              `user-${30 + i}`,
            );
            return { browser, callbackUrl };
          }),
        );
        rig.proxy.refuse(true);
        rig.proxy.dropAll();
        const firstAnswers: Record<string, number> = {};
        let slowest = 0;
        for (const { browser, callbackUrl } of pending) {
          const started = performance.now();
          const outcome = await browser.request(callbackUrl.href);
          slowest = Math.max(slowest, performance.now() - started);
          const got = `${statusOf(outcome)}${deniedHeader(outcome, 'retry-after') === undefined ? '' : ' retry-after'}`;
          firstAnswers[got] = (firstAnswers[got] ?? 0) + 1;
        }
        await sleep(2_000);
        rig.proxy.refuse(false);
        const retries: Record<string, number> = {};
        for (const { browser, callbackUrl } of pending) {
          const outcome = await browser.request(callbackUrl.href);
          const got =
            statusOf(outcome) === 302 && locationOf(outcome) === `${ORIGIN}/`
              ? 'logged in'
              : `${statusOf(outcome)} ${outcome.kind === 'deny' ? outcome.body.slice(0, 80) : ''}`;
          retries[got] = (retries[got] ?? 0) + 1;
        }
        extra['callbacksDuringBlip'] = firstAnswers;
        extra['slowestCallbackDuringBlipMs'] = Math.round(slowest);
        extra['retries'] = retries;
      },
    });
    const line = REQUEST_BUDGET_MS + TRANSPORT_ALLOWANCE_MS;
    const problems: string[] = [];
    if (JSON.stringify(report.extra['retries']) !== JSON.stringify({ 'logged in': 10 }))
      problems.push(`retried callbacks: ${JSON.stringify(report.extra['retries'])}`);
    if (
      JSON.stringify(report.extra['callbacksDuringBlip']) !==
      JSON.stringify({ '503 retry-after': 10 })
    )
      problems.push(
        `callbacks during the blip: ${JSON.stringify(report.extra['callbacksDuringBlip'])}`,
      );
    if ((report.extra['slowestCallbackDuringBlipMs'] as number) > line)
      problems.push(`a callback held ${String(report.extra['slowestCallbackDuringBlipMs'])} ms`);
    assert.deepEqual(problems, []);
    assertDoneWhen(report);
  });
});
