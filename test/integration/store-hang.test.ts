/** A Redis that hangs (SIGSTOP) while sessions are due for refresh: every Check is answered within its budget. */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, deniedHeader, locationOf, statusOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const secret = 'store-hang-client-secret-0123456789';
const BUDGET_MS = 200;
/** What the client may see on top of the budget: gRPC framing and this process's event loop. */
const TRANSPORT_MS = 60;
const xhr: [string, string][] = [['accept', 'application/json']];

function app(issuer: string, name: string, refresh: Record<string, unknown>) {
  return {
    name,
    match: { hosts: [`${name}.example.com`] },
    oidc: { issuer, clientId: 'hang', clientSecret: secret, probeInterval: '1h' },
    refresh,
    session: { secrets: [testSessionSecret] },
  };
}

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

describe('Redis hung while sessions are due for refresh', () => {
  let provider: TestProvider;
  let redis: RedisProcess;
  let server: TestServer;
  let envoy: EnvoyClient;
  // The server's clock: moved on to make access tokens expire without waiting for them.
  const clock = { offset: 0 };

  before(async () => {
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'hang',
          clientSecret: secret,
          redirectUris: [
            'https://ahead.example.com/oauth2/callback',
            'https://strict.example.com/oauth2/callback',
          ],
        },
      ],
      accessTokenTtlSeconds: 60,
    });
    redis = await startRedis();
    server = await startTestServer(
      {
        request: { budget: `${BUDGET_MS}ms` },
        // A command timeout far beyond the budget: only the per-call bounds keep Checks short.
        store: { type: 'redis', redis: { url: redis.url, commandTimeout: '5s' } },
        apps: [
          // Due from the start: every Check looks for a published refresh result.
          app(provider.issuer, 'ahead', { skew: '1h' }),
          // No grace: an expired session whose store hangs is answered 503.
          app(provider.issuer, 'strict', { skew: '1s', outageGrace: '0s' }),
        ],
      },
      { now: () => Date.now() + clock.offset },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await redis.kill('SIGCONT').catch(() => undefined);
    await redis.stop();
    await provider.close();
  });

  async function timedCheck(b: AppBrowser, url: string): Promise<{ outcome: Outcome; ms: number }> {
    const started = performance.now();
    const outcome = await b.request(url, { navigate: false, headers: xhr });
    return { outcome, ms: performance.now() - started };
  }

  it('serves a session whose token still works, and answers an expired one 503 with Retry-After, each within the budget', async () => {
    const ahead = new AppBrowser(envoy);
    await ahead.login('https://ahead.example.com/');
    const strict = new AppBrowser(envoy);
    await strict.login('https://strict.example.com/');

    await redis.kill('SIGSTOP');
    try {
      // The first Check after the hang: its revocation look-up runs out of time, and so would
      // its look-up of a published refresh result, were it allowed to wait again.
      const due = await timedCheck(ahead, 'https://ahead.example.com/a');
      assert.equal(
        userOf(due.outcome),
        'alice',
        `served: ${JSON.stringify(statusOf(due.outcome))}`,
      );
      assert.ok(due.ms < BUDGET_MS + TRANSPORT_MS, `answered after ${Math.round(due.ms)} ms`);

      // The strict app's access token expires (its clock moves on); the store still hangs.
      clock.offset = 120_000;
      const expired = await timedCheck(strict, 'https://strict.example.com/b');
      assert.equal(statusOf(expired.outcome), 503, 'not refreshed while the store hangs');
      assert.ok(Number(deniedHeader(expired.outcome, 'retry-after')) >= 1, 'Retry-After');
      assert.equal(locationOf(expired.outcome), undefined, 'never sent to log in');
      assert.ok(
        expired.ms < BUDGET_MS + TRANSPORT_MS,
        `answered after ${Math.round(expired.ms)} ms`,
      );

      const again = await timedCheck(ahead, 'https://ahead.example.com/c');
      assert.equal(userOf(again.outcome), 'alice');
      assert.ok(again.ms < BUDGET_MS + TRANSPORT_MS, `answered after ${Math.round(again.ms)} ms`);
    } finally {
      await redis.kill('SIGCONT');
    }
  });
});
