/**
 * RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `state`, `client_id` and
 * `id_token_hint` sent, the state checked when the provider sends the browser back, and a
 * provider without an end-session endpoint (issue 15).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { AppBrowser, locationOf, setCookieLines, statusOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { scriptedLogout } from '../support/scripted-login.ts';
import { startAppStack, type AppStack, type SignInApp } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const origin = 'https://shop.example.com';
const signedOut = `${origin}/signed-out`;
const logoutCookie = '__Host-_eoa_shop_logout';

function shop(provider: SignInApp['provider'] = {}): SignInApp {
  return {
    name: 'shop',
    clientSecret: 'shop-client-secret-long-enough-0123',
    client: { postLogoutRedirectUris: [signedOut] },
    provider,
    oidc: { postLogoutRedirectUri: signedOut },
    app: { publicPaths: [{ exact: '/signed-out' }] },
  };
}

function assertNoLineBreaks(outcome: Outcome): void {
  assert.notEqual(outcome.kind, 'error');
  const headers =
    outcome.kind === 'deny'
      ? outcome.headers
      : outcome.kind === 'allow'
        ? outcome.upstream.headers
        : [];
  for (const [name, value] of headers) assert.doesNotMatch(`${name}: ${value}`, /[\r\n\0]/);
}

describe('RP-initiated logout state', () => {
  let stack: AppStack;
  let provider: TestProvider;
  let envoy: EnvoyClient;
  let log: CapturedLog;

  before(async () => {
    log = captureLog();
    stack = await startAppStack(shop(), { logger: log.logger });
    provider = stack.provider;
    envoy = new EnvoyClient({ target: stack.server.grpcTarget, protos, timeoutMs: 10_000 });
  });
  after(async () => {
    envoy.close();
    await stack.server.close();
    await provider.close();
  });

  async function loggedOut(): Promise<{ browser: AppBrowser; endSession: URL }> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${origin}/`);
    const outcome = await browser.request(`${origin}/oauth2/logout`);
    assert.equal(statusOf(outcome), 302);
    return { browser, endSession: new URL(locationOf(outcome)!) };
  }

  it('sends state, client_id and id_token_hint; the return with that state is confirmed once', async () => {
    const { browser, endSession } = await loggedOut();
    assert.equal(endSession.origin + endSession.pathname, `${provider.issuer}/session/end`);
    assert.equal(endSession.searchParams.get('client_id'), 'shop');
    assert.ok(endSession.searchParams.get('id_token_hint'));
    assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), signedOut);
    const state = endSession.searchParams.get('state') ?? '';
    assert.match(state, /^[A-Za-z0-9_-]{32}$/, 'random, base64url');
    assert.equal(browser.cookies.get(logoutCookie), state);

    const { finalUrl } = await scriptedLogout(endSession, { jar: browser.providerJar! });
    assert.equal(finalUrl.origin + finalUrl.pathname, signedOut, 'the provider sent us back');
    assert.equal(finalUrl.searchParams.get('state'), state, 'with the state');

    const back = await browser.request(finalUrl.href);
    assert.equal(statusOf(back), 302);
    assert.equal(locationOf(back), signedOut, 'the same page without our state');
    assert.equal(browser.cookies.has(logoutCookie), false, 'the logout cookie expired');
    const page = await browser.request(signedOut);
    assert.equal(page.kind, 'allow', 'the post-logout page (a public path) is served');

    // The same return again: no cookie any more, so none of ours; it goes on as a public path.
    const replay = await browser.request(finalUrl.href);
    assert.equal(replay.kind, 'allow');
  });

  it('keeps the other query parameters of the return', async () => {
    const { browser } = await loggedOut();
    const state = browser.cookies.get(logoutCookie)!;
    const back = await browser.request(`${signedOut}?lang=fr&state=${state}&x=%0D%0A`);
    assert.equal(locationOf(back), `${signedOut}?lang=fr&x=%0D%0A`);
    assertNoLineBreaks(back);
  });

  it('refuses a return whose state is not this browser’s: 400 page, cookie expired, one log line', async () => {
    for (const forged of [
      'not-the-state',
      '',
      'a\r\nset-cookie: x=y',
      'ünïcödé',
      'x'.repeat(4 * 1024),
      undefined,
    ]) {
      const { browser } = await loggedOut();
      const state = browser.cookies.get(logoutCookie)!;
      const query = forged === undefined ? '' : `?state=${encodeURIComponent(forged)}`;
      const before = log.matching(/logout return not confirmed/).length;
      const back = await browser.request(`${signedOut}${query}`);
      assert.equal(statusOf(back), 400, JSON.stringify(forged?.slice(0, 20)));
      assert.equal(locationOf(back), undefined);
      assertNoLineBreaks(back);
      assert.ok(setCookieLines(back).some((l) => l.startsWith(`${logoutCookie}=;`)));
      assert.equal(browser.cookies.has(logoutCookie), false);
      const lines = log.matching(/logout return not confirmed/);
      assert.equal(lines.length, before + 1);
      assert.equal(typeof lines.at(-1)?.['requestId'], 'string');
      assert.ok(!log.text().includes(state), 'the state is never logged');
    }
  });

  it('lets a state query through on the post-logout page when the browser started no logout', async () => {
    const stranger = new AppBrowser(envoy);
    const outcome = await stranger.request(`${signedOut}?state=anything`);
    assert.equal(outcome.kind, 'allow');
  });
});

describe('a provider without an end-session endpoint', () => {
  it('ends the session locally and sends the browser to the post-logout page, with no state', async () => {
    const stack = await startAppStack(shop({ rpInitiatedLogout: false }));
    const envoy = new EnvoyClient({ target: stack.server.grpcTarget, protos, timeoutMs: 10_000 });
    try {
      const browser = new AppBrowser(envoy);
      await browser.login(`${origin}/`);
      const copied = new Map(browser.cookies);
      const outcome = await browser.request(`${origin}/oauth2/logout`);
      assert.equal(statusOf(outcome), 302);
      assert.equal(locationOf(outcome), signedOut);
      assert.equal(browser.cookies.has(logoutCookie), false, 'no state to check');
      assert.equal(browser.cookies.has('__Host-_eoa_shop'), false, 'the session cookie expired');
      const replay = new AppBrowser(envoy);
      for (const [n, v] of copied) replay.cookies.set(n, v);
      const after = await replay.request(`${origin}/x`, {
        navigate: false,
        headers: [['accept', 'application/json']],
      });
      assert.equal(statusOf(after), 401, 'the copied cookie no longer works');
    } finally {
      envoy.close();
      await stack.server.close();
      await stack.provider.close();
    }
  });
});
