import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { serverSessionReuseMs } from '../../src/session/server-session-cache.ts';
import { AppBrowser, assertProviderUnavailable, locationOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { redisCli, startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const serverOrigin = 'https://grafana.example.com';
const cookieOrigin = 'https://cookies.example.com';
const secret = 'grafana-client-secret-long-enough';

async function eventually(
  what: string,
  withinMs: number,
  predicate: () => Promise<boolean>,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await predicate()) return Date.now() - started;
    if (Date.now() - started > withinMs) throw new Error(`not within ${withinMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function metric(server: TestServer, pattern: RegExp): Promise<string | undefined> {
  const text = await (await fetch(`${server.adminBase}/metrics`)).text();
  return pattern.exec(text)?.[1];
}

/** The provider session id, from the ID token passed upstream. */
function sidOf(outcome: Outcome): string {
  assert.equal(outcome.kind, 'allow');
  const idToken = outcome.kind === 'allow' ? outcome.upstream.headers.get('x-id-token') : undefined;
  const sid = decodeJwt(idToken ?? '').sid;
  assert.equal(typeof sid, 'string', 'the ID token carries sid');
  return sid as string;
}

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

describe('shared state on Redis across three replicas', () => {
  let redis: RedisProcess;
  let provider: TestProvider;
  const servers: TestServer[] = [];
  const clients: EnvoyClient[] = [];

  before(async () => {
    redis = await startRedis();
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'grafana',
          clientSecret: secret,
          redirectUris: [`${serverOrigin}/oauth2/callback`, `${cookieOrigin}/oauth2/callback`],
          postLogoutRedirectUris: [`${serverOrigin}/`],
          // Makes the provider put `sid` in ID tokens.
          backchannelLogoutUri: `${serverOrigin}/oauth2/backchannel-logout`,
        },
      ],
    });
    const app = (name: string, host: string, store: 'server' | 'cookie') => ({
      name,
      match: { hosts: [host] },
      oidc: {
        issuer: provider.issuer,
        clientId: 'grafana',
        clientSecret: secret,
        backchannelLogoutPath: '/oauth2/backchannel-logout',
        frontchannelLogoutPath: '/oauth2/frontchannel-logout',
        probeInterval: '100ms',
      },
      session: { store, secrets: [testSessionSecret] },
      passAccessToken: true,
      passIdToken: true,
    });
    for (let i = 0; i < 3; i++) {
      const server = await startTestServer({
        store: { type: 'redis', redis: { url: redis.url, commandTimeout: '500ms' } },
        breakers: {
          store: { volumeThreshold: 2, rollingWindow: '2s', resetTimeout: '250ms' },
          idp: { volumeThreshold: 2, rollingWindow: '2s', resetTimeout: '250ms' },
        },
        apps: [
          app('grafana', 'grafana.example.com', 'server'),
          app('cookies', 'cookies.example.com', 'cookie'),
        ],
      });
      servers.push(server);
      clients.push(
        new EnvoyClient({
          target: server.grpcTarget,
          protos,
          timeoutMs: 5_000,
          withRequestBody: true,
        }),
      );
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.close();
    await provider.close();
    await redis.stop();
  });

  const browserOn = (replica: number, from?: AppBrowser): AppBrowser => {
    const b = new AppBrowser(clients[replica]!);
    if (from !== undefined) {
      for (const [n, v] of from.cookies) b.cookies.set(n, v);
      b.providerJar = from.providerJar;
    }
    return b;
  };

  it('serves a user logged in through A on B and C', async () => {
    const a = browserOn(0);
    await a.login(`${serverOrigin}/`);
    for (const replica of [1, 2]) {
      assert.equal(
        userOf(await browserOn(replica, a).request(`${serverOrigin}/x`)),
        'alice',
        `replica ${replica}`,
      );
    }
  });

  it('refuses on B a state already consumed on A', async () => {
    const a = browserOn(0);
    const { callbackUrl } = await a.startAndAuthenticate(`${serverOrigin}/`);
    const b = browserOn(1, a);
    await a.finish(callbackUrl);
    // B holds the same flow's cookie: the same answer within a minute (a reload whose first
    // answer was lost), never a second exchange; with another code, refused.
    const forged = new URL(callbackUrl);
    forged.searchParams.set('code', 'another-code');
    const replay = await b.request(forged.href);
    assert.equal(replay.kind === 'deny' && replay.status, 400);
    const stranger = await browserOn(1).request(callbackUrl.href);
    assert.equal(stranger.kind === 'deny' && stranger.status, 400);
  });

  it('ends the session on A and C within a second of a back-channel logout posted to B, once', async () => {
    const a = browserOn(0);
    await a.login(`${serverOrigin}/`);
    // The same provider session (SSO) for a cookie-session app: one sid for both.
    const cookieUser = browserOn(0);
    cookieUser.providerJar = a.providerJar;
    await cookieUser.login(`${cookieOrigin}/`);
    const sid = sidOf(await a.request(`${serverOrigin}/x`));
    assert.equal(sidOf(await cookieUser.request(`${cookieOrigin}/x`)), sid);
    const token = await provider.signJwt(
      {
        aud: 'grafana',
        jti: randomUUID(),
        sid,
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      },
      { typ: 'logout+jwt' },
    );
    const post = () =>
      fetch(`${servers[1]!.httpBase}/oauth2/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }).toString(),
      });
    const accepted = await post();
    assert.equal(accepted.status, 200, await accepted.text());
    for (const replica of [0, 2]) {
      const took = await eventually(`session ended on replica ${replica}`, 1_000, async () => {
        const server = await browserOn(replica, a).request(`${serverOrigin}/x`, {
          navigate: false,
          headers: [['accept', 'application/json']],
        });
        const cookie = await browserOn(replica, cookieUser).request(`${cookieOrigin}/x`, {
          navigate: false,
          headers: [['accept', 'application/json']],
        });
        return server.kind === 'deny' && cookie.kind === 'deny';
      });
      assert.ok(took <= 1_000);
    }
    const again = await post();
    assert.equal(again.status, 400);
    assert.match(await again.text(), /already used/);
  });

  it('accepts a back-channel logout through a Check carrying the body', async () => {
    const c = browserOn(2);
    await c.login(`${serverOrigin}/`);
    const sid = sidOf(await c.request(`${serverOrigin}/x`));
    const token = await provider.signJwt({
      aud: 'grafana',
      jti: randomUUID(),
      sid,
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    });
    const outcome = await clients[0]!.check({
      url: `${serverOrigin}/oauth2/backchannel-logout`,
      method: 'POST',
      headers: [['content-type', 'application/x-www-form-urlencoded']],
      body: new URLSearchParams({ logout_token: token }).toString(),
    });
    assert.equal(
      outcome.kind === 'deny' && outcome.status,
      200,
      'answered by Envoy as a local 200',
    );
    const refused = async (replica: number) => {
      const after = await browserOn(replica, c).request(`${serverOrigin}/x`, {
        navigate: false,
        headers: [['accept', 'application/json']],
      });
      return after.kind === 'deny' && after.status === 401;
    };
    assert.ok(await refused(0), 'at once on the replica that took the logout');
    // C served the session moments ago and may reuse it for its short window.
    await eventually('session ended on replica 2', 1_000, () => refused(2));
  });

  it("accepts the provider's retry of a back-channel logout that a hung Redis cut short", async () => {
    const user = browserOn(0);
    await user.login(`${serverOrigin}/`);
    const sid = sidOf(await user.request(`${serverOrigin}/x`));
    const token = await provider.signJwt({
      aud: 'grafana',
      jti: randomUUID(),
      sid,
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    });
    const post = () =>
      fetch(`${servers[1]!.httpBase}/oauth2/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }).toString(),
      });
    // Redis stops executing writes (reads go on); what was sent runs once it resumes, as after
    // a stall. The logout's writes time out on our side (commandTimeout 500 ms).
    await redisCli(redis.port, 'CLIENT', 'PAUSE', '30000', 'WRITE');
    let cutShort: Response;
    try {
      cutShort = await post();
    } finally {
      await redisCli(redis.port, 'CLIENT', 'UNPAUSE');
    }
    assert.equal(cutShort.status, 503, await cutShort.text());
    assert.ok(cutShort.headers.has('retry-after'));
    // The provider retries the same token: it is not "already used", and the session ends.
    const retried = await post();
    assert.equal(retried.status, 200, await retried.text());
    await eventually('session ended on replica 0', 1_000, async () => {
      const outcome = await browserOn(0, user).request(`${serverOrigin}/x`, {
        navigate: false,
        headers: [['accept', 'application/json']],
      });
      return outcome.kind === 'deny';
    });
    const replay = await post();
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /already used/);
  });

  it('ends the session on every replica on a front-channel logout with iss and sid', async () => {
    const b = browserOn(1);
    await b.login(`${serverOrigin}/`);
    const sid = sidOf(await b.request(`${serverOrigin}/x`));
    const forged = await browserOn(0).request(
      `${serverOrigin}/oauth2/frontchannel-logout?iss=${encodeURIComponent('https://evil.example')}&sid=${sid}`,
    );
    assert.equal(forged.kind === 'deny' && forged.status, 400, 'another issuer is refused');
    const outcome = await browserOn(0).request(
      `${serverOrigin}/oauth2/frontchannel-logout?iss=${encodeURIComponent(provider.issuer)}&sid=${sid}`,
    );
    assert.equal(outcome.kind === 'deny' && outcome.status, 200);
    const after = await browserOn(2, b).request(`${serverOrigin}/x`, {
      navigate: false,
      headers: [['accept', 'application/json']],
    });
    assert.equal(after.kind === 'deny' && after.status, 401);
  });

  it('writes no token in plaintext to Redis', async () => {
    const b = browserOn(0);
    await b.login(`${serverOrigin}/`);
    const allowed = await b.request(`${serverOrigin}/x`);
    assert.equal(allowed.kind, 'allow');
    const accessToken =
      allowed.kind === 'allow'
        ? allowed.upstream.headers.get('authorization')!.slice('Bearer '.length)
        : '';
    const idToken = allowed.kind === 'allow' ? allowed.upstream.headers.get('x-id-token')! : '';
    assert.ok(accessToken.length > 20 && idToken.length > 100);
    const client = new Redis(redis.url);
    try {
      let keys = 0;
      for await (const batch of client.scanStream({ count: 200 })) {
        for (const key of batch as string[]) {
          keys++;
          const type = await client.type(key);
          const values =
            type === 'set'
              ? await client.smembers(key)
              : type === 'string'
                ? [(await client.get(key)) ?? '']
                : [];
          for (const value of [key, ...values]) {
            assert.ok(!value.includes(accessToken), `access token in ${key}`);
            assert.ok(!value.includes(idToken.split('.')[1]!), `ID token in ${key}`);
            assert.doesNotMatch(value, /eyJ[A-Za-z0-9_-]{20,}\.eyJ/, `a JWT in ${key}`);
          }
        }
      }
      assert.ok(keys > 3, `scanned ${keys} keys`);
    } finally {
      client.disconnect();
    }
  });

  it('keeps cookie sessions working while Redis is down, and resumes shared behaviour after', async () => {
    const user = browserOn(0);
    await user.login(`${cookieOrigin}/`);
    const serverUser = browserOn(0);
    await serverUser.login(`${serverOrigin}/`);
    let failed = 0;
    let checks = 0;
    let running = true;
    const traffic = (async () => {
      while (running) {
        for (let replica = 0; replica < 3; replica++) {
          const outcome = await browserOn(replica, user).request(`${cookieOrigin}/x`);
          checks++;
          if (outcome.kind !== 'allow') failed++;
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await redis.kill('SIGKILL');
    await eventually(
      'the store breaker open',
      5_000,
      async () => (await metric(servers[0]!, /eoa_breaker_state\{breaker="store"\} (\d)/)) === '2',
    );
    assert.equal(await metric(servers[0]!, /eoa_store_degraded (\d)/), '1');
    // Server sessions are unavailable, never a login loop; a replica reuses one it read within
    // the last window, so wait that out first.
    await new Promise((resolve) => setTimeout(resolve, serverSessionReuseMs));
    const serverSession = await browserOn(0, serverUser).request(`${serverOrigin}/x`);
    assert.equal(serverSession.kind === 'deny' && serverSession.status, 503);
    assert.ok(
      serverSession.kind === 'deny' && serverSession.headers.some(([n]) => n === 'retry-after'),
    );
    // A back-channel logout that cannot reach the store gets the same answer through Envoy and
    // straight: 503 with Retry-After and an RFC 6749 §5.2 body, so the provider retries.
    const logoutDuringOutage = async (via: 'envoy' | 'straight') => {
      const token = await provider.signJwt({
        aud: 'grafana',
        jti: randomUUID(),
        sid: randomUUID(),
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      });
      const body = new URLSearchParams({ logout_token: token }).toString();
      const contentType = 'application/x-www-form-urlencoded';
      if (via === 'envoy') {
        const outcome = await clients[0]!.check({
          url: `${serverOrigin}/oauth2/backchannel-logout`,
          method: 'POST',
          headers: [['content-type', contentType]],
          body,
        });
        assert.ok(outcome.kind === 'deny');
        const retryAfter = outcome.headers.find(([name]) => name === 'retry-after')?.[1];
        return { status: outcome.status, retryAfter, body: JSON.parse(outcome.body) as unknown };
      }
      const response = await fetch(`${servers[0]!.httpBase}/oauth2/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      });
      const retryAfter = response.headers.get('retry-after') ?? undefined;
      return {
        status: response.status,
        retryAfter,
        body: JSON.parse(await response.text()) as unknown,
      };
    };
    const logoutViaEnvoy = await logoutDuringOutage('envoy');
    const logoutStraight = await logoutDuringOutage('straight');
    assert.equal(logoutViaEnvoy.status, 503);
    assert.equal(logoutStraight.status, 503);
    assert.deepEqual(logoutViaEnvoy.body, {
      error: 'store_unavailable',
      error_description: 'session store unavailable, try again shortly',
    });
    assert.deepEqual(logoutStraight.body, logoutViaEnvoy.body);
    assert.match(logoutViaEnvoy.retryAfter ?? '', /^\d+$/);
    assert.match(logoutStraight.retryAfter ?? '', /^\d+$/);

    await redis.restart();
    const took = await eventually(
      'the store breaker closed again',
      5_000,
      async () => (await metric(servers[0]!, /eoa_breaker_state\{breaker="store"\} (\d)/)) === '0',
    );
    running = false;
    await traffic;
    assert.equal(failed, 0, `${failed} of ${checks} checks failed during the outage`);
    assert.ok(checks > 30, `sustained traffic: ${checks} checks`);
    // Shared behaviour again: a session created on A is served by B.
    const again = browserOn(0);
    await again.login(`${serverOrigin}/`);
    await eventually(
      'server sessions shared again',
      5_000,
      async () => userOf(await browserOn(1, again).request(`${serverOrigin}/x`)) === 'alice',
    );
    console.log(
      `# redis restart to store breaker closed: ${took} ms; ${checks} checks during the outage, ${failed} failed`,
    );
  });

  it('answers logins with 503 while the provider is down, keeps valid sessions, and recovers', async () => {
    const user = browserOn(0);
    await user.login(`${cookieOrigin}/`);
    await provider.stop();
    try {
      // Both apps sign in at one issuer: its breakers are named after the first app on it.
      await eventually(
        'the discovery breaker open',
        5_000,
        async () =>
          (await metric(
            servers[0]!,
            /eoa_breaker_state\{breaker="idp:grafana:discovery"\} (\d)/,
          )) === '2',
      );
      const login = await browserOn(0).request(`${cookieOrigin}/new`);
      assertProviderUnavailable(login, 'a login while the provider is down');
      assert.equal(locationOf(login), undefined, 'no redirect to a dead provider');
      assert.equal(
        userOf(await browserOn(0, user).request(`${cookieOrigin}/x`)),
        'alice',
        'a valid session still works',
      );
    } finally {
      await provider.start();
    }
    await eventually('logins work again', 5_000, async () => {
      const outcome = await browserOn(0).request(`${cookieOrigin}/again`);
      return outcome.kind === 'deny' && outcome.status === 302;
    });
    const fresh = browserOn(0);
    await fresh.login(`${cookieOrigin}/`);
    assert.equal(userOf(await fresh.request(`${cookieOrigin}/x`)), 'alice');
  });
});
