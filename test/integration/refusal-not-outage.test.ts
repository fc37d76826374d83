/**
 * A provider refusing a refresh token without the JSON body RFC 6749 §5.2 asks for (a bare 400,
 * a proxy's HTML 401) refuses that one session: it is not a provider outage (issue 15).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEMO_USER, startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, assertProviderUnavailable, locationOf, statusOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';
import { captureLog } from '../resilience/log-capture.ts';

const protos = loadUpstreamProtos();
const origin = 'https://dash.example.com';
const secret = 'dash-client-secret-long-enough-0123';
const accessTokenTtlSeconds = 60;
const xhr: [string, string][] = [['accept', 'application/json']];
const users = ['alice', 'bob', 'carol', 'dave', 'erin'].map((sub) => ({
  ...DEMO_USER,
  sub,
  email: `${sub}@example.com`,
  preferredUsername: sub,
}));

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

describe('a token-endpoint 4xx without a JSON body is a refusal, not an outage', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let clockOffset = 0;
  const log = captureLog();

  before(async () => {
    provider = await startTestProvider({
      clients: [
        { clientId: 'dash', clientSecret: secret, redirectUris: [`${origin}/oauth2/callback`] },
      ],
      users,
      accessTokenTtlSeconds,
    });
    server = await startTestServer(
      {
        // A breaker that would open on the third failure, as in the report.
        breakers: { idp: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '5s' } },
        apps: [
          {
            name: 'dash',
            match: { hosts: ['dash.example.com'] },
            oidc: {
              issuer: provider.issuer,
              clientId: 'dash',
              clientSecret: secret,
              probeInterval: '1h',
            },
            session: { secrets: [testSessionSecret], maxAge: '24h' },
          },
        ],
      },
      { now: () => Date.now() + clockOffset, logger: log.logger },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  async function metric(pattern: RegExp): Promise<number> {
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? 0);
  }

  it('ends each dead session once, with one attempt, opens no breaker, and other users carry on', async () => {
    const browsers = new Map<string, AppBrowser>();
    for (const user of users.slice(0, 4)) {
      const browser = new AppBrowser(envoy);
      await browser.login(`${origin}/`, user.sub);
      browsers.set(user.sub, browser);
    }
    clockOffset += (accessTokenTtlSeconds + 60) * 1000;
    const tokenRequestsBefore = provider.counters().tokenRequests;

    // Three dead refresh tokens, answered as real providers do: 400 empty, 401 HTML, 400 empty.
    const dead: [string, 'empty' | 'html', number][] = [
      ['alice', 'empty', 400],
      ['bob', 'html', 401],
      ['carol', 'empty', 400],
    ];
    for (const [sub, body, status] of dead) {
      provider.injectFault({ target: 'token', status, body, count: 1 });
      const browser = browsers.get(sub)!;
      const stale = browser.cookieHeader()!;
      const api = await envoy.check({ url: `${origin}/api`, headers: [...xhr, ['cookie', stale]] });
      assert.equal(statusOf(api), 401, `${sub}: an API call gets 401, not 503`);
      // The same dead cookie again, and as a navigation: no further attempt, a login redirect.
      const again = await envoy.check({
        url: `${origin}/api`,
        headers: [...xhr, ['cookie', stale]],
      });
      assert.equal(statusOf(again), 401, `${sub}: still 401`);
      const navigation = await browser.request(`${origin}/page`);
      assert.equal(statusOf(navigation), 302, `${sub}: a navigation is sent to log in`);
      assert.equal(new URL(locationOf(navigation)!).origin, new URL(provider.issuer).origin);
    }
    assert.equal(provider.counters().tokenRequests - tokenRequestsBefore, 3, 'one attempt each');
    const ended = log.matching(/session ended: its refresh token was refused/);
    assert.ok(ended.length >= 3, 'a line for each request the session ended on');
    assert.ok(ended.every((line) => typeof line['requestId'] === 'string'));
    assert.equal(log.matching(/provider unavailable|identity provider/i).length, 0);
    assert.equal(provider.counters().faultsInjected >= 3, true);

    assert.equal(await metric(/eoa_breaker_failures_total\{breaker="idp:dash:token"\} (\d+)/), 0);
    assert.equal(await metric(/eoa_breaker_opens_total\{breaker="idp:dash:token"\} (\d+)/), 0);
    assert.equal(await metric(/eoa_breaker_state\{breaker="idp:dash:token"\} (\d+)/), 0);

    // Another user with a live refresh token is refreshed; a new user can log in at once.
    const dave = await browsers
      .get('dave')!
      .request(`${origin}/api`, { navigate: false, headers: xhr });
    assert.equal(userOf(dave), 'dave', JSON.stringify(dave));
    const erin = new AppBrowser(envoy);
    await erin.login(`${origin}/`, 'erin');
    assert.equal(
      userOf(await erin.request(`${origin}/api`, { navigate: false, headers: xhr })),
      'erin',
    );
  });

  for (const [status, body] of [
    [400, 'empty'],
    [401, 'html'],
  ] as const) {
    it(`answers a code exchange refused with ${status} and an ${body} body with the error page, not 503`, async () => {
      const browser = new AppBrowser(envoy);
      const { callbackUrl } = await browser.startAndAuthenticate(`${origin}/`, 'erin');
      provider.injectFault({ target: 'token', status, body, count: 1 });
      const callback = await browser.request(callbackUrl.href);
      assert.equal(statusOf(callback), 401);
      assert.match(callback.kind === 'deny' ? callback.body : '', /Sign-in could not be completed/);
      assert.equal(await metric(/eoa_breaker_failures_total\{breaker="idp:dash:token"\} (\d+)/), 0);
      // A fresh login works at once.
      await browser.login(`${origin}/`, 'erin');
      assert.equal(
        userOf(await browser.request(`${origin}/api`, { navigate: false, headers: xhr })),
        'erin',
      );
    });
  }

  it('still answers a 503 with an HTML page as an outage: 503 with Retry-After', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login(`${origin}/`, 'alice');
    clockOffset += (accessTokenTtlSeconds + 60) * 1000;
    provider.injectFault({ target: 'token', status: 503, body: 'html', count: 1 });
    const outage = await browser.request(`${origin}/api`, { navigate: false, headers: xhr });
    assertProviderUnavailable(outage, 'a refresh answered 503');
    assert.ok((await metric(/eoa_breaker_failures_total\{breaker="idp:dash:token"\} (\d+)/)) >= 1);
  });
});
