import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, assertProviderUnavailable, setCookieLines } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { waitFor } from '../support/redis-servers.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const secret = 'ahead-client-secret-long-enough-0123';
/**
 * Access tokens live 60 s. The servers' clock is moved on rather than waited for (see
 * {@link clock}), so however slow the machine, no token comes due while a test sets up.
 */
const accessTokenTtlSeconds = 60;
const expiredAfterMs = accessTokenTtlSeconds * 1_000 + 100;
const xhr: [string, string][] = [['accept', 'application/json']];

/**
 * The servers' clock: real time plus whatever the tests skipped. The provider keeps real time;
 * the servers reckon a token's expiry from `expires_in` on their own clock.
 */
const clock = {
  skippedMs: 0,
  now: (): number => Date.now() + clock.skippedMs,
  skip(ms: number): void {
    clock.skippedMs += ms;
  },
};

/** `eoa_refresh_grants_total` of `app` with outcome `ok`: grants the server has taken in. */
async function grantsTakenIn(server: TestServer, app: string): Promise<number> {
  const text = await (await fetch(`${server.adminBase}/metrics`)).text();
  const pattern = new RegExp(`eoa_refresh_grants_total\\{app="${app}",outcome="ok"\\} (\\d+)`);
  return Number(pattern.exec(text)?.[1] ?? 0);
}

function app(issuer: string, name: string, refresh: Record<string, unknown>) {
  return {
    name,
    match: { hosts: [`${name}.example.com`] },
    oidc: { issuer, clientId: 'ahead', clientSecret: secret, probeInterval: '1h' },
    refresh: { lockTtl: '1s', cooldown: '30s', ...refresh },
    session: { secrets: [testSessionSecret] },
    passAccessToken: true,
  };
}

function refreshGrants(provider: TestProvider): { success: number; invalid_grant: number } {
  const byOutcome = provider.counters().grants['refresh_token'] ?? {};
  return { success: byOutcome['success'] ?? 0, invalid_grant: byOutcome['invalid_grant'] ?? 0 };
}

function bearer(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('authorization') : undefined;
}

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

describe('refresh off the request path', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'ahead',
          clientSecret: secret,
          redirectUris: [
            'https://early.example.com/oauth2/callback',
            'https://late.example.com/oauth2/callback',
          ],
        },
      ],
      accessTokenTtlSeconds,
    });
    server = await startTestServer(
      {
        apps: [
          // Due 30 s after login, 30 s before the access token expires.
          app(provider.issuer, 'early', { skew: '30s', waitTimeout: '4s' }),
          // A request waits for the provider at most 300 ms.
          app(provider.issuer, 'late', { skew: '1s', waitTimeout: '300ms' }),
        ],
      },
      { now: clock.now },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('answers a Check on a session due for refresh at once; the next Check after the grant carries the new tokens', async () => {
    const origin = 'https://early.example.com';
    const b = new AppBrowser(envoy);
    await b.login(`${origin}/`);
    const first = await b.request(`${origin}/a`, { navigate: false, headers: xhr });
    const oldBearer = bearer(first);
    assert.ok(oldBearer !== undefined);
    clock.skip(30_100);
    provider.injectFault({ target: 'token', latencyMs: 2_000, count: 1 });
    const before = refreshGrants(provider);
    const takenIn = await grantsTakenIn(server, 'early');
    const requestsBefore = provider.counters().tokenRequests;

    // Due but still valid: answered with the current tokens while the grant is held at the provider.
    const cookie = b.cookieHeader()!;
    const served = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        envoy.check({ url: `${origin}/p/${i}`, headers: [...xhr, ['cookie', cookie]] }),
      ),
    );
    assert.equal(refreshGrants(provider).success, before.success, 'the grant is still in flight');
    for (const outcome of served) {
      assert.equal(userOf(outcome), 'alice');
      assert.equal(bearer(outcome), oldBearer, 'served with the current access token');
      assert.deepEqual(setCookieLines(outcome), [], 'no session written yet');
    }

    // Once the server has the grant's answer, not merely once the provider sent it.
    await waitFor(
      'the background grant',
      async () => (await grantsTakenIn(server, 'early')) > takenIn,
    );
    assert.equal(provider.counters().tokenRequests - requestsBefore, 1, 'one token request');
    const next = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
    assert.equal(userOf(next), 'alice');
    const newBearer = bearer(next);
    assert.notEqual(newBearer, oldBearer, 'the next Check carries the new access token');
    assert.ok(
      setCookieLines(next).some((l) => l.startsWith('__Host-_eoa_early=')),
      'and writes the refreshed session',
    );
    const again = await b.request(`${origin}/c`, { navigate: false, headers: xhr });
    assert.equal(bearer(again), newBearer);
    const after = refreshGrants(provider);
    assert.equal(after.success - before.success, 1, 'exactly one grant');
    assert.equal(after.invalid_grant - before.invalid_grant, 0);
  });

  it('keeps a grant our side stopped waiting for: the next request uses its result, no invalid_grant', async () => {
    const origin = 'https://late.example.com';
    const b = new AppBrowser(envoy);
    await b.login(`${origin}/`);
    const first = await b.request(`${origin}/a`, { navigate: false, headers: xhr });
    const oldBearer = bearer(first);
    clock.skip(expiredAfterMs);
    // Slower than the 300 ms our side waits; the provider rotates the refresh token.
    provider.injectFault({ target: 'token', latencyMs: 1_500, count: 1 });
    const before = refreshGrants(provider);
    const takenIn = await grantsTakenIn(server, 'late');
    const stale = new Map(b.cookies);

    const timedOut = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
    assertProviderUnavailable(timedOut, 'an expired session whose refresh is slow');
    assert.equal(refreshGrants(provider).success, before.success, 'answered before the grant');

    await waitFor(
      'the grant our side gave up on',
      async () => (await grantsTakenIn(server, 'late')) > takenIn,
    );
    // The same (pre-rotation) cookie again: the published result, not the spent refresh token.
    for (const [n, v] of stale) b.cookies.set(n, v);
    const next = await b.request(`${origin}/c`, { navigate: false, headers: xhr });
    assert.equal(userOf(next), 'alice', 'the session survives');
    assert.notEqual(bearer(next), oldBearer);
    assert.ok(setCookieLines(next).some((l) => l.startsWith('__Host-_eoa_late=')));
    const again = await b.request(`${origin}/d`, { navigate: false, headers: xhr });
    assert.equal(userOf(again), 'alice');
    const after = refreshGrants(provider);
    assert.equal(after.success - before.success, 1, 'one grant');
    assert.equal(after.invalid_grant - before.invalid_grant, 0, 'no invalid_grant');
  });

  it('keeps a grant the provider answers after 6 s, past the 5 s deadline of other provider calls', async () => {
    const origin = 'https://late.example.com';
    const b = new AppBrowser(envoy);
    await b.login(`${origin}/`);
    clock.skip(expiredAfterMs);
    provider.injectFault({ target: 'token', latencyMs: 6_000, count: 1 });
    const before = refreshGrants(provider);
    const takenIn = await grantsTakenIn(server, 'late');
    const stale = new Map(b.cookies);

    const waiting = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
    assertProviderUnavailable(waiting, 'an expired session whose provider takes 6 s');
    await waitFor('the 6 s grant', async () => (await grantsTakenIn(server, 'late')) > takenIn);
    for (const [n, v] of stale) b.cookies.set(n, v);
    const next = await b.request(`${origin}/c`, { navigate: false, headers: xhr });
    assert.equal(userOf(next), 'alice', 'the session survives');
    assert.ok(setCookieLines(next).some((l) => l.startsWith('__Host-_eoa_late=')));
    const after = refreshGrants(provider);
    assert.equal(after.success - before.success, 1, 'one grant');
    assert.equal(after.invalid_grant - before.invalid_grant, 0, 'no invalid_grant');
  });

  it('waits for the refresh of an expired session no longer than request.budget, whatever refresh.waitTimeout says', async () => {
    const budgetMs = 150;
    const tight = await startTestServer(
      {
        request: { budget: `${budgetMs}ms` },
        apps: [app(provider.issuer, 'late', { skew: '1s', waitTimeout: '8s' })],
      },
      { now: clock.now },
    );
    const client = new EnvoyClient({ target: tight.grpcTarget, protos, timeoutMs: 10_000 });
    try {
      const origin = 'https://late.example.com';
      const b = new AppBrowser(client);
      await b.login(`${origin}/`);
      clock.skip(expiredAfterMs);
      provider.injectFault({ target: 'token', latencyMs: 8_000, count: 1 });
      const before = refreshGrants(provider);
      const takenIn = await grantsTakenIn(tight, 'late');
      const stale = new Map(b.cookies);

      const started = performance.now();
      const waiting = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
      const tookMs = performance.now() - started;
      // The provider's answer, not the budget's: the wait ends inside the budget, long before
      // the provider's 8 s or refresh.waitTimeout's (a busy machine may add a second or two).
      assertProviderUnavailable(waiting, 'an expired session whose provider takes 8 s');
      assert.ok(tookMs < 4_000, `answered after ${Math.round(tookMs)} ms`);
      await waitFor(
        'the 8 s grant',
        async () => (await grantsTakenIn(tight, 'late')) > takenIn,
        20_000,
      );
      for (const [n, v] of stale) b.cookies.set(n, v);
      const next = await b.request(`${origin}/c`, { navigate: false, headers: xhr });
      assert.equal(userOf(next), 'alice', 'the session survives');
      assert.equal(refreshGrants(provider).success - before.success, 1, 'one grant');
    } finally {
      client.close();
      await tight.close();
    }
  });

  it("answers within Envoy's grpc-timeout when it is shorter than request.budget: 503, not a deadline error", async () => {
    const roomy = await startTestServer(
      {
        request: { budget: '20s' },
        apps: [app(provider.issuer, 'late', { skew: '1s', waitTimeout: '20s' })],
      },
      { now: clock.now },
    );
    // Far under the budget and the provider's 8 s, and long enough for a busy machine.
    const envoyTimeoutMs = 2_000;
    const client = new EnvoyClient({ target: roomy.grpcTarget, protos, timeoutMs: envoyTimeoutMs });
    try {
      const origin = 'https://late.example.com';
      const b = new AppBrowser(client);
      await b.login(`${origin}/`);
      clock.skip(expiredAfterMs);
      provider.injectFault({ target: 'token', latencyMs: 8_000, count: 1 });
      const before = refreshGrants(provider);
      const waiting = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
      // Envoy would turn a DEADLINE_EXCEEDED into its own error status: ours carries Retry-After.
      assertProviderUnavailable(waiting, `an expired session, Envoy waiting ${envoyTimeoutMs} ms`);
      await waitFor(
        'the 8 s grant',
        () => refreshGrants(provider).success > before.success,
        20_000,
      );
    } finally {
      client.close();
      await roomy.close();
    }
  });
});
