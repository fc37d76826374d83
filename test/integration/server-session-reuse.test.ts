/**
 * Server sessions on a real redis-server across three replicas, each reusing a session it read
 * within the last quarter second: what a hot session costs the store, and that logouts and
 * outages still behave as SPEC §10/§11 say.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { serverSessionReuseMs } from '../../src/session/server-session-cache.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { redisCli, startRedis, type RedisProcess } from '../support/redis-servers.ts';
import {
  signInAppConfig,
  startAppProvider,
  startTestServer,
  type SignInApp,
  type TestServer,
} from '../support/test-server.ts';

const origin = 'https://grafana.example.com';
const secret = 'grafana-client-secret-long-enough';
const xhr: [string, string][] = [['accept', 'application/json']];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The replicas' clock: real time, except while a test holds it still and moves it on by hand
 * (so that how many reuse windows a run of Checks spans does not depend on the machine's speed).
 */
const clock = {
  offsetMs: 0,
  heldAt: undefined as number | undefined,
  now: (): number => clock.heldAt ?? Date.now() + clock.offsetMs,
  hold(): void {
    clock.heldAt = clock.now();
  },
  advance(ms: number): void {
    if (clock.heldAt !== undefined) clock.heldAt += ms;
  },
  /** Runs on from where it was held, never backwards. */
  release(): void {
    if (clock.heldAt !== undefined) clock.offsetMs = clock.heldAt - Date.now();
    clock.heldAt = undefined;
  },
};

/** Polls until `predicate` holds; returns how long that took, or fails after `withinMs`. */
async function eventually(
  what: string,
  withinMs: number,
  predicate: () => Promise<boolean>,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await predicate()) return Date.now() - started;
    if (Date.now() - started > withinMs) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(20);
  }
}

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

/** `GET` commands the server has run so far (`INFO commandstats`). */
async function getCalls(redis: RedisProcess): Promise<number> {
  const stats = await redisCli(redis.port, 'info', 'commandstats');
  return Number(/^cmdstat_get:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
}

describe('server sessions reused per replica, on redis-server across three replicas', () => {
  let redis: RedisProcess;
  let provider: TestProvider;
  const servers: TestServer[] = [];
  const clients: EnvoyClient[] = [];

  before(async () => {
    // Persistent, so the session written before an outage is still there after it.
    redis = await startRedis({ persistence: true });
    const app: SignInApp = {
      name: 'grafana',
      clientSecret: secret,
      client: {
        postLogoutRedirectUris: [`${origin}/`],
        // Makes the provider put `sid` in ID tokens.
        backchannelLogoutUri: `${origin}/oauth2/backchannel-logout`,
      },
      oidc: { backchannelLogoutPath: '/oauth2/backchannel-logout', probeInterval: '1h' },
      session: { store: 'server' },
      app: { passIdToken: true },
    };
    provider = await startAppProvider(app);
    for (let i = 0; i < 3; i++) {
      const server = await startTestServer(
        {
          store: { type: 'redis', redis: { url: redis.url, commandTimeout: '500ms' } },
          breakers: { store: { volumeThreshold: 2, rollingWindow: '2s', resetTimeout: '250ms' } },
          apps: [signInAppConfig(app, provider.issuer)],
        },
        { now: clock.now },
      );
      servers.push(server);
      clients.push(grpcModeEnvoy(server));
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.close();
    await provider.close();
    await redis.stop();
  });

  /** A browser on `replica`, with the cookies of `from`. */
  const browserOn = (replica: number, from?: AppBrowser | ReadonlyMap<string, string>) => {
    const b = new AppBrowser(clients[replica]!);
    const cookies = from instanceof AppBrowser ? from.cookies : from;
    for (const [n, v] of cookies ?? []) b.cookies.set(n, v);
    return b;
  };

  /** One XHR Check with `cookies` on `replica`: allowed as alice, or denied with which status. */
  async function checkOn(
    replica: number,
    cookies: ReadonlyMap<string, string>,
  ): Promise<string | number | undefined> {
    const outcome = await browserOn(replica, cookies).request(`${origin}/api`, {
      navigate: false,
      headers: xhr,
    });
    return outcome.kind === 'deny' ? outcome.status : userOf(outcome);
  }

  /** Logs alice in on replica 0 and has every replica serve (and so hold) her session. */
  async function hotSession(): Promise<{ browser: AppBrowser; cookies: Map<string, string> }> {
    const browser = browserOn(0);
    await browser.login(`${origin}/`);
    for (let replica = 0; replica < 3; replica++) {
      assert.equal(await checkOn(replica, browser.cookies), 'alice', `replica ${replica}`);
    }
    return { browser, cookies: new Map(browser.cookies) };
  }

  it('a hot session costs the store a few reads per quarter second, not one per Check', async () => {
    const { cookies } = await hotSession();
    const checks = 300;
    // 30 Checks per reuse window, over 10 windows, however long each Check takes.
    const windows = 10;
    const before = await getCalls(redis);
    clock.hold();
    try {
      for (let i = 0; i < checks; i++) {
        if (i % (checks / windows) === 0) clock.advance(serverSessionReuseMs);
        assert.equal(await checkOn(1, cookies), 'alice');
      }
    } finally {
      clock.release();
    }
    const gets = (await getCalls(redis)) - before;
    // Per window: the record, and the revocation check's session, `sid` and `sub` marks.
    const bound = 4 * (windows + 1);
    console.log(`# ${checks} Checks of one server session over ${windows} windows: ${gets} GETs`);
    assert.ok(gets <= bound, `${gets} GETs for ${checks} Checks in ${windows} windows`);
    assert.ok(gets < checks / 4, `${gets} GETs for ${checks} Checks`);
  });

  it('a logout on one replica: refused there at once, on the others within a second', async () => {
    const { browser, cookies } = await hotSession();
    const logout = await browser.request(`${origin}/oauth2/logout`);
    assert.equal(logout.kind === 'deny' && logout.status, 302);
    assert.equal(await checkOn(0, cookies), 401, 'at once on the replica that logged out');
    for (const replica of [1, 2]) {
      const took = await eventually(
        `logout in force on replica ${replica}`,
        1_000,
        async () => (await checkOn(replica, cookies)) === 401,
      );
      assert.ok(took <= 1_000);
    }
  });

  it('a back-channel logout on one replica: refused there at once, on the others within a second', async () => {
    const { browser, cookies } = await hotSession();
    const allowed = await browserOn(2, browser).request(`${origin}/x`, {
      navigate: false,
      headers: xhr,
    });
    const idToken = allowed.kind === 'allow' ? allowed.upstream.headers.get('x-id-token') : '';
    const sid = decodeJwt(idToken ?? '').sid;
    assert.equal(typeof sid, 'string', 'the ID token carries sid');
    const token = await provider.signJwt(
      {
        aud: 'grafana',
        jti: randomUUID(),
        sid,
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      },
      { typ: 'logout+jwt' },
    );
    const posted = await fetch(`${servers[2]!.httpBase}/oauth2/backchannel-logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }).toString(),
    });
    assert.equal(posted.status, 200, await posted.text());
    assert.equal(await checkOn(2, cookies), 401, 'at once on the replica that was told');
    for (const replica of [0, 1]) {
      const took = await eventually(
        `back-channel logout in force on replica ${replica}`,
        1_000,
        async () => (await checkOn(replica, cookies)) === 401,
      );
      assert.ok(took <= 1_000);
    }
  });

  it('Redis down: 503 with Retry-After once the window has passed, never a login; served again after', async () => {
    const { cookies } = await hotSession();
    await redis.kill('SIGKILL');
    try {
      await sleep(serverSessionReuseMs);
      for (let replica = 0; replica < 3; replica++) {
        const outcome = await browserOn(replica, cookies).request(`${origin}/page`);
        assert.equal(outcome.kind === 'deny' && outcome.status, 503, `replica ${replica}`);
        assert.ok(
          outcome.kind === 'deny' && outcome.headers.some(([n]) => n === 'retry-after'),
          'with Retry-After',
        );
      }
    } finally {
      await redis.restart();
    }
    for (let replica = 0; replica < 3; replica++) {
      await eventually(`served again on replica ${replica}`, 5_000, async () => {
        return (await checkOn(replica, cookies)) === 'alice';
      });
    }
  });
});
