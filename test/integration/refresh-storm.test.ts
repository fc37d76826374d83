import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, assertProviderUnavailable, setCookieLines } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import { clockOffsetPreloadPath, spawnServer } from '../support/server-process.ts';
import { captureLog } from '../resilience/log-capture.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const origin = 'https://dash.example.com';
/** The same app with server sessions (`session.store: server`), on the three-replica servers. */
const serverOrigin = 'https://dash-server.example.com';
const secret = 'dash-client-secret-long-enough-0123';
/**
 * Access tokens live 60 s and are refreshed in their last 30 s: a session goes stale 30 s after
 * login. The servers' clock is moved on rather than waited for (see {@link clock}), so however
 * slow the machine, no token goes stale while a test is still setting up.
 */
const accessTokenTtlSeconds = 60;
const staleAfterMs = 30_100;
/**
 * A Check waits for a refresh only once the access token has expired (before that the refresh
 * runs in the background): the herd tests below send their Checks after expiry.
 */
const expiredAfterMs = 60_100;
const xhr: [string, string][] = [['accept', 'application/json']];
/**
 * request.budget for the herds: 500 Checks at once on a busy machine take seconds each, and
 * what is counted here is grants, not latency.
 */
const patientBudget = '8s';

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

function app(issuer: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'dash',
    match: { hosts: ['dash.example.com'] },
    oidc: { issuer, clientId: 'dash', clientSecret: secret, probeInterval: '1h' },
    refresh: { skew: '30s', lockTtl: '1s', waitTimeout: '4s', cooldown: '30s' },
    session: { secrets: [testSessionSecret] },
    ...overrides,
  };
}

function refreshGrants(provider: TestProvider): {
  success: number;
  invalid_grant: number;
  other: number;
} {
  const byOutcome = provider.counters().grants['refresh_token'] ?? {};
  let other = 0;
  for (const [outcome, n] of Object.entries(byOutcome))
    if (outcome !== 'success' && outcome !== 'invalid_grant') other += n;
  return {
    success: byOutcome['success'] ?? 0,
    invalid_grant: byOutcome['invalid_grant'] ?? 0,
    other,
  };
}

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
}

/** Sends `count` Checks at once with the browser's cookies, spread over the clients; times each. */
async function herd(
  clients: readonly EnvoyClient[],
  from: AppBrowser,
  count: number,
  at = origin,
): Promise<{ outcomes: Outcome[]; ms: number[] }> {
  const cookie = from.cookieHeader()!;
  const ms: number[] = [];
  const outcomes = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const started = performance.now();
      const outcome = await clients[i % clients.length]!.check({
        url: `${at}/api/panel/${i}`,
        headers: [...xhr, ['cookie', cookie]],
      });
      ms.push(performance.now() - started);
      return outcome;
    }),
  );
  return { outcomes, ms: ms.sort((a, b) => a - b) };
}

describe('refresh without storms', () => {
  let provider: TestProvider;
  let redis: RedisProcess;

  before(async () => {
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'dash',
          clientSecret: secret,
          redirectUris: [`${origin}/oauth2/callback`, `${serverOrigin}/oauth2/callback`],
        },
      ],
      accessTokenTtlSeconds,
    });
    redis = await startRedis();
  });

  after(async () => {
    await provider.close();
    await redis.stop();
  });

  describe('one server', () => {
    let server: TestServer;
    let envoy: EnvoyClient;
    const log = captureLog();

    before(async () => {
      server = await startTestServer(
        { request: { budget: patientBudget }, apps: [app(provider.issuer)] },
        { logger: log.logger, now: clock.now },
      );
      envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
    });
    after(async () => {
      envoy.close();
      await server.close();
    });

    it('makes exactly one grant for 500 concurrent Checks on one stale session, all allowed', async () => {
      const b = new AppBrowser(envoy);
      await b.login(`${origin}/`);
      const fresh = await herd([envoy], b, 500);
      assert.ok(fresh.outcomes.every((o) => userOf(o) === 'alice'));
      clock.skip(expiredAfterMs);
      const before = refreshGrants(provider);
      const stale = await herd([envoy], b, 500);
      const after = refreshGrants(provider);
      assert.equal(after.success - before.success, 1, 'exactly one refresh grant');
      assert.equal(after.invalid_grant - before.invalid_grant, 0, 'no invalid_grant');
      assert.equal(stale.outcomes.filter((o) => userOf(o) === 'alice').length, 500, '500 allows');
      assert.ok(
        stale.outcomes.every((o) => setCookieLines(o).length > 0),
        'each carries the renewed cookie',
      );
      console.log(
        `# one server: no refresh p50 ${quantile(fresh.ms, 0.5).toFixed(1)} ms p99 ${quantile(fresh.ms, 0.99).toFixed(1)} ms; ` +
          `with the herd p50 ${quantile(stale.ms, 0.5).toFixed(1)} ms p99 ${quantile(stale.ms, 0.99).toFixed(1)} ms`,
      );

      // A request still carrying the pre-rotation cookie, 10 s later, gets the new tokens too.
      const late = new AppBrowser(envoy);
      for (const [n, v] of b.cookies) late.cookies.set(n, v);
      clock.skip(10_000);
      const grantsBefore = refreshGrants(provider);
      const outcome = await late.request(`${origin}/late`, { navigate: false, headers: xhr });
      assert.equal(userOf(outcome), 'alice', 'the old cookie is still let in');
      assert.ok(
        setCookieLines(outcome).some((l) => l.startsWith('__Host-_eoa_dash=')),
        'and carries the new cookie back',
      );
      assert.equal(refreshGrants(provider).success, grantsBefore.success, 'without another grant');
      assert.equal(refreshGrants(provider).invalid_grant, grantsBefore.invalid_grant);
      const metrics = await (await fetch(`${server.adminBase}/metrics`)).text();
      assert.match(metrics, /eoa_refresh_grants_total\{app="dash",outcome="ok"\} 1\n/);
      // 499 followers of the herd (in flight, or just after the result was published) and the late one.
      const followers = [
        ...metrics.matchAll(
          /eoa_refresh_followers_total\{app="dash",source="(?:process|late)"\} (\d+)/g,
        ),
      ];
      assert.equal(
        followers.reduce((sum, m) => sum + Number(m[1]), 0),
        500,
      );
    });

    it('ends a session whose grant was revoked after exactly one attempt: login for browsers, 401 for XHR', async () => {
      const b = new AppBrowser(envoy);
      await b.login(`${origin}/`);
      for (const id of provider.grantIds('alice', 'dash')) await provider.revokeGrant(id);
      clock.skip(expiredAfterMs);
      const stale = new Map(b.cookies);
      const before = refreshGrants(provider);
      const [navigation, ...calls] = await Promise.all([
        b.request(`${origin}/page`),
        ...Array.from({ length: 20 }, () =>
          envoy.check({
            url: `${origin}/api`,
            headers: [...xhr, ['cookie', [...stale].map(([n, v]) => `${n}=${v}`).join('; ')]],
          }),
        ),
      ]);
      assert.equal(
        navigation.kind === 'deny' && navigation.status,
        302,
        'the browser is sent to log in',
      );
      for (const call of calls)
        assert.equal(call.kind === 'deny' && call.status, 401, 'XHR gets 401');
      // The same stale cookie again, within the cooldown: no further attempt.
      const again = await envoy.check({
        url: `${origin}/api`,
        headers: [...xhr, ['cookie', [...stale].map(([n, v]) => `${n}=${v}`).join('; ')]],
      });
      assert.equal(again.kind === 'deny' && again.status, 401);
      const after = refreshGrants(provider);
      assert.equal(
        after.invalid_grant +
          after.success +
          after.other -
          (before.invalid_grant + before.success + before.other),
        1,
        'exactly one grant attempt',
      );
    });

    it('allows while the provider is unreachable and the token still valid; 503 with Retry-After once it expired', async () => {
      const b = new AppBrowser(envoy);
      await b.login(`${origin}/`);
      clock.skip(staleAfterMs);
      await provider.stop();
      try {
        const stillValid = await b.request(`${origin}/x`, { navigate: false, headers: xhr });
        assert.equal(userOf(stillValid), 'alice');
        clock.skip(expiredAfterMs - staleAfterMs);
        const before = log.matching(/session not refreshed/).length;
        const expired = await b.request(`${origin}/x`, { navigate: false, headers: xhr });
        assertProviderUnavailable(expired, 'a session that cannot be refreshed');
        const lines = log.matching(/session not refreshed/).slice(before);
        assert.equal(lines.length, 1, 'one line for the 503');
        assert.equal(lines[0]?.['app'], 'dash');
        assert.match(String(lines[0]?.['requestId']), /./);
        assert.equal(lines[0]?.['cause'], 'the provider is unavailable');
      } finally {
        await provider.start();
      }
    });
  });

  describe('three servers sharing one redis-server', () => {
    const servers: TestServer[] = [];
    const clients: EnvoyClient[] = [];

    /** Sessions the three replicas ended on the provider's `invalid_grant`, all told. */
    async function endedByInvalidGrant(): Promise<number> {
      let ended = 0;
      for (const server of servers) {
        const text = await (await fetch(`${server.adminBase}/metrics`)).text();
        ended += Number(
          /eoa_refresh_grants_total\{app="dash",outcome="invalid_grant"\} (\d+)/.exec(text)?.[1] ??
            0,
        );
      }
      return ended;
    }

    before(async () => {
      for (let i = 0; i < 3; i++) {
        const server = await startTestServer(
          {
            store: { type: 'redis', redis: { url: redis.url, commandTimeout: '2s' } },
            request: { budget: patientBudget },
            breakers: { store: { volumeThreshold: 2, resetTimeout: '250ms' } },
            apps: [
              app(provider.issuer),
              app(provider.issuer, {
                name: 'dash-server',
                match: { hosts: ['dash-server.example.com'] },
                session: { store: 'server', secrets: [testSessionSecret] },
                passAccessToken: true,
              }),
            ],
          },
          { now: clock.now },
        );
        servers.push(server);
        clients.push(new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 }));
      }
    });
    after(async () => {
      for (const client of clients) client.close();
      for (const server of servers) await server.close();
    });

    it('makes exactly one grant for 500 concurrent Checks spread over three replicas', async () => {
      const b = new AppBrowser(clients[0]!);
      await b.login(`${origin}/`);
      const fresh = await herd(clients, b, 500);
      clock.skip(expiredAfterMs);
      const before = refreshGrants(provider);
      const stale = await herd(clients, b, 500);
      const after = refreshGrants(provider);
      assert.equal(after.success - before.success, 1, 'exactly one refresh grant');
      assert.equal(after.invalid_grant - before.invalid_grant, 0);
      assert.equal(stale.outcomes.filter((o) => userOf(o) === 'alice').length, 500, '500 allows');
      let replicaFollowers = 0;
      for (const server of servers) {
        const text = await (await fetch(`${server.adminBase}/metrics`)).text();
        replicaFollowers += Number(
          /eoa_refresh_followers_total\{app="dash",source="(?:replica|late)"\} (\d+)/.exec(
            text,
          )?.[1] ?? 0,
        );
      }
      assert.ok(
        replicaFollowers >= 2,
        `the other replicas took the published result (${replicaFollowers})`,
      );
      console.log(
        `# three replicas: no refresh p50 ${quantile(fresh.ms, 0.5).toFixed(1)} ms p99 ${quantile(fresh.ms, 0.99).toFixed(1)} ms; ` +
          `with the herd p50 ${quantile(stale.ms, 0.5).toFixed(1)} ms p99 ${quantile(stale.ms, 0.99).toFixed(1)} ms`,
      );
    });

    it('server sessions: one grant for 500 concurrent Checks over three replicas, each then serving the new token', async () => {
      const b = new AppBrowser(clients[0]!);
      await b.login(`${serverOrigin}/`);
      // Every replica now holds the session in its own short cache.
      const fresh = await herd(clients, b, 500, serverOrigin);
      assert.ok(fresh.outcomes.every((o) => userOf(o) === 'alice'));
      clock.skip(expiredAfterMs);
      const before = refreshGrants(provider);
      const stale = await herd(clients, b, 500, serverOrigin);
      const after = refreshGrants(provider);
      assert.equal(after.success - before.success, 1, 'exactly one refresh grant');
      assert.equal(after.invalid_grant - before.invalid_grant, 0, 'no invalid_grant');
      assert.equal(stale.outcomes.filter((o) => userOf(o) === 'alice').length, 500, '500 allows');
      const bearer = (o: Outcome) =>
        o.kind === 'allow' ? o.upstream.headers.get('authorization') : undefined;
      const renewed = new Set(stale.outcomes.map(bearer));
      assert.equal(renewed.size, 1, 'every Check forwarded the one new access token');
      assert.notEqual(bearer(fresh.outcomes[0]!), [...renewed][0]);
      for (let replica = 0; replica < 3; replica++) {
        const outcome = await clients[replica]!.check({
          url: `${serverOrigin}/x`,
          headers: [...xhr, ['cookie', b.cookieHeader()!]],
        });
        assert.ok(renewed.has(bearer(outcome)), `replica ${replica} serves the new token`);
      }
      assert.equal(refreshGrants(provider).success, after.success, 'and no grant after');
    });

    it('lets another replica finish the refresh after the lock holder dies mid-grant; nobody is logged out', async () => {
      const b = new AppBrowser(clients[0]!);
      await b.login(`${origin}/`);
      clock.skip(expiredAfterMs);
      // A replica in its own process (to be killed), its clock moved on as the others' was.
      const doomed = await spawnServer(
        {
          log: { level: 'silent' },
          store: { type: 'redis', redis: { url: redis.url } },
          apps: [app(provider.issuer)],
        },
        {
          nodeArgs: ['--import', clockOffsetPreloadPath],
          env: { EOA_TEST_CLOCK_OFFSET_MS: String(clock.skippedMs) },
        },
      );
      const doomedEnvoy = new EnvoyClient({ target: doomed.grpcTarget, protos, timeoutMs: 10_000 });
      try {
        // The grant of the replica about to die hangs at the provider, then fails unprocessed.
        provider.injectFault({ target: 'token', latencyMs: 3_000, status: 503, count: 1 });
        const before = refreshGrants(provider);
        const requestsBefore = provider.counters().tokenRequests;
        const cookie = b.cookieHeader()!;
        const dying = doomedEnvoy
          .check({ url: `${origin}/x`, headers: [...xhr, ['cookie', cookie]] })
          .catch(() => undefined);
        await waitFor(
          "the doomed replica's grant at the provider",
          () => provider.counters().tokenRequests > requestsBefore,
        );
        await doomed.stop('SIGKILL');
        const outcome = await clients[1]!.check({
          url: `${origin}/x`,
          headers: [...xhr, ['cookie', cookie]],
        });
        assert.equal(
          userOf(outcome),
          'alice',
          'allowed once the lease lapsed and this replica refreshed',
        );
        const after = refreshGrants(provider);
        assert.equal(after.success - before.success, 1);
        assert.equal(after.invalid_grant - before.invalid_grant, 0);
        void dying;
      } finally {
        provider.clearFaults();
        doomedEnvoy.close();
        await doomed.stop('SIGKILL');
      }
    });

    it('while Redis is down: no grant, every Check served on the current tokens (refresh.outageGrace); after it is back one grant serves every replica', async () => {
      const b = new AppBrowser(clients[0]!);
      await b.login(`${origin}/`);
      const endedBefore = await endedByInvalidGrant();
      const beforeOutage = refreshGrants(provider);
      await redis.kill('SIGKILL');
      try {
        clock.skip(expiredAfterMs);
        const before = refreshGrants(provider);
        const { outcomes } = await herd(clients, b, 300);
        const after = refreshGrants(provider);
        const attempts =
          after.success +
          after.invalid_grant +
          after.other -
          (before.success + before.invalid_grant + before.other);
        assert.equal(attempts, 0, 'no refresh token spent without the shared lock');
        for (const outcome of outcomes) assert.equal(userOf(outcome), 'alice');
      } finally {
        await redis.restart();
      }
      // Once the store is back, every replica serves the pre-rotation cookie from the result.
      const cookie = b.cookieHeader()!;
      await waitFor('every replica to serve the session again', async () => {
        const outcomes = await Promise.all(
          clients.map((client) =>
            client.check({ url: `${origin}/back`, headers: [...xhr, ['cookie', cookie]] }),
          ),
        );
        return (
          outcomes.every((o) => userOf(o) === 'alice') &&
          refreshGrants(provider).success > beforeOutage.success
        );
      });
      assert.equal(await endedByInvalidGrant(), endedBefore, 'no session ended by invalid_grant');
      const afterOutage = refreshGrants(provider);
      assert.equal(afterOutage.success - beforeOutage.success, 1, 'one grant once Redis is back');
      assert.equal(afterOutage.invalid_grant - beforeOutage.invalid_grant, 0);
    });
  });
});
