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
/** Access tokens live 6 s. */
const accessTokenTtlSeconds = 6;
const xhr: [string, string][] = [['accept', 'application/json']];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
    server = await startTestServer({
      apps: [
        // Due 1 s after login, 5 s before the access token expires.
        app(provider.issuer, 'early', { skew: '5s', waitTimeout: '4s' }),
        // A request waits for the provider at most 300 ms.
        app(provider.issuer, 'late', { skew: '1s', waitTimeout: '300ms' }),
      ],
    });
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
    await sleep(1_100);
    provider.injectFault({ target: 'token', latencyMs: 2_000, count: 1 });
    const before = refreshGrants(provider);
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

    await waitFor('the background grant', () => refreshGrants(provider).success > before.success);
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
    await sleep(accessTokenTtlSeconds * 1_000 + 100);
    // Slower than the 300 ms our side waits; the provider rotates the refresh token.
    provider.injectFault({ target: 'token', latencyMs: 1_500, count: 1 });
    const before = refreshGrants(provider);
    const stale = new Map(b.cookies);

    const timedOut = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
    assertProviderUnavailable(timedOut, 'an expired session whose refresh is slow');
    assert.equal(refreshGrants(provider).success, before.success, 'answered before the grant');

    await waitFor('the grant our side gave up on', () => {
      return refreshGrants(provider).success > before.success;
    });
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
    await sleep(accessTokenTtlSeconds * 1_000 + 100);
    provider.injectFault({ target: 'token', latencyMs: 6_000, count: 1 });
    const before = refreshGrants(provider);
    const stale = new Map(b.cookies);

    const waiting = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
    assertProviderUnavailable(waiting, 'an expired session whose provider takes 6 s');
    await waitFor('the 6 s grant', () => refreshGrants(provider).success > before.success);
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
    const tight = await startTestServer({
      request: { budget: `${budgetMs}ms` },
      apps: [app(provider.issuer, 'late', { skew: '1s', waitTimeout: '5s' })],
    });
    const client = new EnvoyClient({ target: tight.grpcTarget, protos, timeoutMs: 10_000 });
    try {
      const origin = 'https://late.example.com';
      const b = new AppBrowser(client);
      await b.login(`${origin}/`);
      await sleep(accessTokenTtlSeconds * 1_000 + 100);
      provider.injectFault({ target: 'token', latencyMs: 1_000, count: 1 });
      const before = refreshGrants(provider);
      const stale = new Map(b.cookies);

      const started = performance.now();
      const waiting = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
      const tookMs = performance.now() - started;
      // The provider's answer, not the budget's: the wait ends inside the budget.
      assertProviderUnavailable(waiting, 'an expired session whose provider takes 1 s');
      assert.ok(tookMs < budgetMs + 100, `answered after ${Math.round(tookMs)} ms`);
      await waitFor('the 1 s grant', () => refreshGrants(provider).success > before.success);
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
    const roomy = await startTestServer({
      request: { budget: '5s' },
      apps: [app(provider.issuer, 'late', { skew: '1s', waitTimeout: '5s' })],
    });
    const envoyTimeoutMs = 300;
    const client = new EnvoyClient({ target: roomy.grpcTarget, protos, timeoutMs: envoyTimeoutMs });
    try {
      const origin = 'https://late.example.com';
      const b = new AppBrowser(client);
      await b.login(`${origin}/`);
      await sleep(accessTokenTtlSeconds * 1_000 + 100);
      provider.injectFault({ target: 'token', latencyMs: 2_000, count: 1 });
      const before = refreshGrants(provider);
      const waiting = await b.request(`${origin}/b`, { navigate: false, headers: xhr });
      // Envoy would turn a DEADLINE_EXCEEDED into its own error status: ours carries Retry-After.
      assertProviderUnavailable(waiting, `an expired session, Envoy waiting ${envoyTimeoutMs} ms`);
      await waitFor('the 2 s grant', () => refreshGrants(provider).success > before.success);
    } finally {
      client.close();
      await roomy.close();
    }
  });
});
