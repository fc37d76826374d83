/**
 * The callback under faults, with replicas sharing one real Redis and a real OpenID Provider: a
 * provider blip at the token endpoint does not burn the login state (the browser's retry of the
 * same callback URL completes the login, on any replica), a completed login is never accepted
 * twice, concurrent callbacks with one state exchange once, and login states tolerate
 * `oidc.clockSkew` between replicas — beyond it, the refusal names the clocks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import {
  AppBrowser,
  assertProviderUnavailable,
  deniedHeader,
  statusOf,
} from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { signInAppConfig, startTestServer, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const clientSecret = 'callback-faults-client-secret';
/** How far the first replica's clock is ahead of the others. */
const aheadMs = 120_000;
/**
 * The replicas' request.budget: long enough that no Check on a busy machine runs out of it
 * unless a fault holds it at the provider (for a multiple of it).
 */
const budgetMs = 2_000;
/** How long a login may take to complete on a busy machine. */
const settleMs = 30_000;
const clockMessage = /the login state was issued in the future: check the clocks of the replicas/;

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

function bodyOf(outcome: Outcome): string {
  return outcome.kind === 'deny' ? outcome.body : '';
}

function grantsOf(provider: TestProvider): { success: number; tokenRequests: number } {
  const counters = provider.counters();
  return {
    success: counters.grants['authorization_code']?.['success'] ?? 0,
    tokenRequests: counters.tokenRequests,
  };
}

describe('the callback under provider faults and clock skew, replicas on Redis', () => {
  let redis: RedisProcess;
  let provider: TestProvider;
  let log: CapturedLog;
  const servers: TestServer[] = [];
  const clients: EnvoyClient[] = [];

  before(async () => {
    redis = await startRedis();
    const names = ['blip', 'tolerant', 'strict', 'tickets'];
    provider = await startTestProvider({
      clients: names.map((name) => ({
        clientId: name,
        clientSecret,
        redirectUris: [`https://${name}.example.com/oauth2/callback`],
      })),
    });
    const apps = [
      signInAppConfig(
        { name: 'blip', clientSecret, oidc: { probeInterval: '1h' } },
        provider.issuer,
      ),
      signInAppConfig(
        { name: 'tolerant', clientSecret, oidc: { probeInterval: '1h', clockSkew: '3m' } },
        provider.issuer,
      ),
      signInAppConfig(
        { name: 'strict', clientSecret, oidc: { probeInterval: '1h', clockSkew: '30s' } },
        provider.issuer,
      ),
      signInAppConfig(
        {
          name: 'tickets',
          clientSecret,
          oidc: { probeInterval: '1h' },
          session: { store: 'server' },
        },
        provider.issuer,
      ),
    ];
    log = captureLog('info');
    // Replica 0's clock is two minutes ahead of replicas 1 and 2.
    const clocks = [() => Date.now() + aheadMs, Date.now, Date.now];
    for (const now of clocks) {
      const server = await startTestServer(
        {
          store: { type: 'redis', redis: { url: redis.url, commandTimeout: '500ms' } },
          request: { budget: `${budgetMs}ms` },
          breakers: { store: { volumeThreshold: 2, rollingWindow: '2s', resetTimeout: '250ms' } },
          apps,
        },
        { now, logger: log.logger },
      );
      servers.push(server);
      clients.push(new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 }));
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.close();
    await provider.close();
    await redis.stop();
  });

  /** A browser talking to `replica`, with the cookies (and provider session) of `from`. */
  const browserOn = (replica: number, from?: AppBrowser): AppBrowser => {
    const browser = new AppBrowser(clients[replica]!);
    if (from !== undefined) {
      for (const [name, value] of from.cookies) browser.cookies.set(name, value);
      browser.providerJar = from.providerJar;
    }
    return browser;
  };

  it('a callback that met a 503 at the token endpoint completes on retry, on another replica', async () => {
    const origin = 'https://blip.example.com';
    const user = browserOn(1);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/report`);
    const beforeLogin = browserOn(1, user);
    const counted = grantsOf(provider);
    const faults = provider.counters().faultsInjected;
    provider.injectFault({ target: 'token', status: 503, count: 1 });

    const first = await user.request(callbackUrl.href);
    assertProviderUnavailable(first, 'the callback during the blip');
    assert.equal(provider.counters().faultsInjected, faults + 1, 'the blip hit the exchange');

    // The browser reloads the same callback URL; a load balancer sends it elsewhere.
    const retry = browserOn(2, user);
    assert.equal(await retry.finish(callbackUrl), `${origin}/report`);
    assert.equal(userOf(await browserOn(1, retry).request(`${origin}/x`)), 'alice');
    assert.deepEqual(grantsOf(provider), {
      success: counted.success + 1,
      tokenRequests: counted.tokenRequests + 2,
    });

    // The completed state is never exchanged again. The browser that made it, retrying its
    // callback (as if the answer had not reached it), gets the same answer on any replica;
    // the same code with another flow's cookie, or another code with this one, is refused.
    for (const replica of [1, 2]) {
      const again = browserOn(replica, beforeLogin);
      assert.equal(await again.finish(callbackUrl), `${origin}/report`, `retry on ${replica}`);
      assert.equal(userOf(await again.request(`${origin}/x`)), 'alice');
      const elsewhere = await browserOn(replica).request(callbackUrl.href);
      assert.equal(statusOf(elsewhere), 400, `another browser on replica ${replica}`);
      const forged = new URL(callbackUrl);
      forged.searchParams.set('code', 'not-the-code');
      const otherCode = await browserOn(replica, beforeLogin).request(forged.href);
      assert.equal(statusOf(otherCode), 400, `another code on replica ${replica}`);
      assert.match(bodyOf(otherCode), /already used/);
    }
    assert.equal(grantsOf(provider).tokenRequests, counted.tokenRequests + 2);
  });

  it("a callback that runs out of request.budget completes on the browser's retry, on another replica", async () => {
    const origin = 'https://blip.example.com';
    const user = browserOn(1);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/slow`);
    const counted = grantsOf(provider);
    // The exchange takes longer than the budget.
    provider.injectFault({ target: 'token', latencyMs: 2 * budgetMs, count: 1 });
    const first = await user.request(callbackUrl.href);
    assert.equal(statusOf(first), 503, 'answered when the budget ran out');
    assert.equal(deniedHeader(first, 'retry-after'), '1');
    assert.match(bodyOf(first), /<meta http-equiv="refresh" content="1">/);
    assert.match(
      log.text(),
      /check not decided within request\.budget/,
      'the over-budget answer is logged',
    );
    // The exchange goes on and completes at the provider; the page reloads itself, perhaps
    // onto another replica, which answers 409 (and reloads again) until the login is done.
    const retry = browserOn(2, user);
    const started = Date.now();
    let outcome = await retry.request(callbackUrl.href);
    while (statusOf(outcome) === 409) {
      assert.ok(Date.now() - started < settleMs, 'the login completes');
      await new Promise((resolve) => setTimeout(resolve, 10));
      outcome = await retry.request(callbackUrl.href);
    }
    assert.equal(statusOf(outcome), 302, bodyOf(outcome));
    assert.equal(deniedHeader(outcome, 'location'), `${origin}/slow`);
    assert.equal(userOf(await browserOn(1, retry).request(`${origin}/x`)), 'alice');
    assert.deepEqual(grantsOf(provider), {
      success: counted.success + 1,
      tokenRequests: counted.tokenRequests + 1,
    });
  });

  it('two concurrent callbacks with one state exchange the code once', async () => {
    const origin = 'https://blip.example.com';
    const user = browserOn(1);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/`);
    const other = browserOn(2, user);
    const counted = grantsOf(provider);
    // Holds the first exchange at the provider until the second callback has been answered.
    provider.injectFault({ target: 'token', latencyMs: 2 * budgetMs, count: 1 });
    const first = user.request(callbackUrl.href);
    const started = Date.now();
    while (grantsOf(provider).tokenRequests === counted.tokenRequests) {
      assert.ok(Date.now() - started < settleMs, 'the first exchange reached the provider');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const second = await other.request(callbackUrl.href);
    assert.equal(statusOf(second), 409, 'the second callback waits for the first');
    assert.ok(other.cookies.size > 0, 'and keeps its login-state cookie');
    // The first outlasts its budget: answered 503, its exchange goes on.
    assert.equal(statusOf(await first), 503);
    while (grantsOf(provider).success === counted.success) {
      assert.ok(Date.now() - started < settleMs, 'the first exchange completed');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    let reloaded = await user.request(callbackUrl.href);
    while (statusOf(reloaded) === 409) {
      assert.ok(Date.now() - started < settleMs, 'the login completes');
      await new Promise((resolve) => setTimeout(resolve, 10));
      reloaded = await user.request(callbackUrl.href);
    }
    assert.equal(statusOf(reloaded), 302);
    assert.equal(userOf(await user.request(`${origin}/x`)), 'alice');
    assert.deepEqual(grantsOf(provider), {
      success: counted.success + 1,
      tokenRequests: counted.tokenRequests + 1,
    });
    // Reloaded once the first is done: the same answer (it is the same browser's flow), and
    // still one exchange.
    assert.equal(await other.finish(callbackUrl), `${origin}/`);
    assert.equal(userOf(await other.request(`${origin}/x`)), 'alice');
    assert.equal(grantsOf(provider).tokenRequests, counted.tokenRequests + 1);
  });

  it('a login started on a replica two minutes ahead completes within oidc.clockSkew', async () => {
    const origin = 'https://tolerant.example.com';
    const user = browserOn(0);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/dashboard`);
    const behind = browserOn(1, user);
    assert.equal(await behind.finish(callbackUrl), `${origin}/dashboard`);
    assert.equal(userOf(await browserOn(0, behind).request(`${origin}/x`)), 'alice');
    assert.equal(userOf(await browserOn(1, behind).request(`${origin}/x`)), 'alice');
  });

  it('beyond oidc.clockSkew, the refusal names the clocks, logged once with the request id', async () => {
    const origin = 'https://strict.example.com';
    const user = browserOn(0);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/`);
    const logged = log.matching(clockMessage).length;
    const refused = await browserOn(1, user).request(callbackUrl.href);
    assert.equal(statusOf(refused), 400);
    assert.match(bodyOf(refused), /clocks/);
    assert.doesNotMatch(bodyOf(refused), /took too long/);
    const lines = log.matching(clockMessage).slice(logged);
    assert.equal(lines.length, 1, 'logged once');
    assert.equal(lines[0]!['level'], 'warn');
    assert.equal(lines[0]!['app'], 'strict');
    assert.equal(typeof lines[0]!['requestId'], 'string');
    assert.notEqual(lines[0]!['requestId'], '');
    const ageMs = Number(lines[0]!['ageMs']);
    assert.ok(ageMs < -aheadMs + 10_000 && ageMs > -aheadMs - 10_000, `ageMs ${ageMs}`);

    // The other way round (started behind, finished ahead) is only two minutes older.
    const back = browserOn(1);
    const flow = await back.startAndAuthenticate(`${origin}/`);
    assert.equal(await browserOn(0, back).finish(flow.callbackUrl), `${origin}/`);
  });

  it('a code the provider refuses ends the flow with a 401, logged once with the request id, and frees the state', async () => {
    const origin = 'https://blip.example.com';
    const user = browserOn(1);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/`);
    const forged = new URL(callbackUrl.href);
    forged.searchParams.set('code', 'not-a-code-the-provider-issued');
    const logged = log.matching(/sign-in response not accepted/).length;
    const refused = await browserOn(1, user).request(forged.href);
    assert.equal(statusOf(refused), 401);
    assert.match(bodyOf(refused), /not accepted/);
    const lines = log.matching(/sign-in response not accepted/).slice(logged);
    assert.equal(lines.length, 1, 'logged once');
    assert.equal(lines[0]!['app'], 'blip');
    assert.equal(typeof lines[0]!['requestId'], 'string');
    assert.notEqual(lines[0]!['requestId'], '');
    assert.doesNotMatch(JSON.stringify(lines[0]), /not-a-code-the-provider-issued/);
    // The claim was released: the genuine callback, on another replica, still completes.
    assert.equal(await browserOn(2, user).finish(callbackUrl), `${origin}/`);
  });

  // Last: it stops Redis.
  it('a callback whose session could not be stored (Redis down) is told to start again on retry, never "already used"', async () => {
    const origin = 'https://tickets.example.com';
    const user = browserOn(1);
    const { callbackUrl } = await user.startAndAuthenticate(`${origin}/`);
    const counted = grantsOf(provider);
    await redis.kill('SIGKILL');
    try {
      const first = await user.request(callbackUrl.href);
      assert.equal(statusOf(first), 503, 'the server session cannot be written');
      assert.ok(Number(deniedHeader(first, 'retry-after')) >= 1);
      assert.equal(grantsOf(provider).success, counted.success + 1, 'the code was spent');
    } finally {
      await redis.restart();
    }
    // The same replica remembers the spent code; another asks the provider, which refuses it.
    for (const replica of [1, 2]) {
      const retry = await browserOn(replica, user).request(callbackUrl.href);
      assert.equal(statusOf(retry), 401, `retry on replica ${replica}`);
      assert.match(bodyOf(retry), /Start again/);
      assert.doesNotMatch(bodyOf(retry), /already used/);
    }
    assert.equal(grantsOf(provider).success, counted.success + 1, 'never a second session');
  });
});
