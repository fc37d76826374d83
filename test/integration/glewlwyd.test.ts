/**
 * The server against a second real OpenID Provider: Glewlwyd, from Debian's `glewlwyd` package
 * (`apt-get install -y glewlwyd`), started once for this file. Where Glewlwyd departs from the
 * standards, the test that meets it says so. Deviations the server does not meet: discovery
 * lists `grant_types_supported` as `authorization_code` and `implicit` only (it grants
 * `refresh_token` and `client_credentials` too) and puts `client_credentials` and
 * `refresh_token` among `response_types_supported`; it advertises no
 * `backchannel_logout_supported` although it sends logout tokens.
 *
 * Claims come from the ID token, Glewlwyd's userinfo (which answers the same `sub`, `name`,
 * `email` and `groups`) and its JWT access token (`oidc.claimsFrom`, every source).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { AppBrowser, locationOf, statusOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startGlewlwyd, type Glewlwyd } from '../support/glewlwyd.ts';
import { waitFor } from '../support/redis-servers.ts';
import { CookieJar } from '../support/scripted-login.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const origin = 'https://grafana.example.com';
const secret = 'grafana-secret-at-glewlwyd-0123456789';
const machineSecret = 'machine-secret-at-glewlwyd-0123456789';
const api = 'https://api.example.com/';
const alice = { username: 'alice', password: 'alice-password' };
const bob = { username: 'bob', password: 'bob-password' };
/** Glewlwyd's access tokens live an hour; the server's clock is moved past that. */
const accessTokenSeconds = 3600;
const xhr: [string, string][] = [['accept', 'application/json']];

async function refreshGrants(server: TestServer, outcome: string): Promise<number> {
  const text = await (await fetch(`${server.adminBase}/metrics`)).text();
  const line = new RegExp(
    `eoa_refresh_grants_total\\{app="grafana",outcome="${outcome}"\\} (\\d+)`,
  );
  return Number(line.exec(text)?.[1] ?? 0);
}

function header(outcome: Outcome, name: string): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get(name) : undefined;
}

describe('against Glewlwyd, a second real OpenID Provider', () => {
  let glewlwyd: Glewlwyd;
  let server: TestServer;
  let envoy: EnvoyClient;
  /** Added to the server's clock, to expire access tokens without waiting. */
  let clockOffset = 0;

  before(async () => {
    glewlwyd = await startGlewlwyd({
      accessTokenSeconds,
      users: [
        {
          ...alice,
          name: 'Alice Example',
          email: 'alice@example.com',
          groups: ['admins', 'users'],
        },
        { ...bob, email: 'bob@example.com', groups: ['users'] },
      ],
      clients: [
        {
          clientId: 'machine',
          clientSecret: machineSecret,
          grantTypes: ['client_credentials'],
          scopes: ['api'],
        },
      ],
      resources: { api: [api] },
    });
    try {
      server = await startTestServer(
        {
          apps: [
            {
              name: 'grafana',
              match: { hosts: ['grafana.example.com'] },
              oidc: {
                issuer: glewlwyd.issuer,
                clientId: 'grafana',
                clientSecret: secret,
                // Standard deviation: Glewlwyd compares the HTTP Basic credentials as sent, without
                // the form-decoding RFC 6749 §2.3.1 asks for, so a secret with `-` (sent as `%2D`)
                // fails `client_secret_basic`; `client_secret_post` works (see the bearer test).
                clientAuth: 'client_secret_post',
                // Every source: userinfo is fetched at each login and refresh, its `sub` checked.
                claimsFrom: ['id_token', 'userinfo', 'access_token'],
                postLogoutRedirectUri: `${origin}/`,
                backchannelLogoutPath: '/oauth2/backchannel-logout',
              },
              session: { secrets: [testSessionSecret] },
              passIdToken: true,
              passAccessToken: true,
              bearer: { enabled: true, audiences: [api], requireJwtType: true },
            },
          ],
        },
        { now: () => Date.now() + clockOffset },
      );
    } catch (error) {
      await glewlwyd.close();
      throw error;
    }
    // Registered once the server listens: Glewlwyd posts logout tokens to it directly.
    await glewlwyd.addClient({
      clientId: 'grafana',
      clientSecret: secret,
      redirectUris: [`${origin}/oauth2/callback`],
      postLogoutRedirectUris: [`${origin}/`],
      backchannelLogoutUri: `${server.httpBase}/oauth2/backchannel-logout`,
      grantTypes: ['code', 'refresh_token'],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });

  afterEach(() => {
    // Later logins must not meet ID tokens that look expired.
    clockOffset = 0;
  });

  after(async () => {
    envoy?.close();
    await server?.close();
    await glewlwyd?.close();
  });

  /** A browser signed in at Glewlwyd (as alice by default); its provider cookies are in `jar`. */
  async function signedIn(user = alice): Promise<{ browser: AppBrowser; jar: CookieJar }> {
    const browser = new AppBrowser(envoy);
    const jar = new CookieJar();
    const start = await browser.request(`${origin}/dashboards`);
    assert.equal(statusOf(start), 302, 'a navigation without a session goes to the provider');
    const authorizationUrl = new URL(locationOf(start)!);
    assert.equal(
      authorizationUrl.origin + authorizationUrl.pathname,
      `${glewlwyd.issuer}/auth`,
      "discovery's authorization endpoint",
    );
    const { callbackUrl } = await glewlwyd.login(authorizationUrl, user, jar);
    assert.equal(await browser.finish(callbackUrl), `${origin}/dashboards`);
    return { browser, jar };
  }

  async function apiCall(browser: AppBrowser): Promise<Outcome> {
    return browser.request(`${origin}/api/search`, { navigate: false, headers: xhr });
  }

  function idTokenOf(outcome: Outcome): Record<string, unknown> {
    const token = header(outcome, 'x-id-token');
    assert.ok(token, 'the ID token is passed upstream');
    return decodeJwt(token);
  }

  it('signs in at Glewlwyd and passes its ID-token claims upstream', async () => {
    const { browser } = await signedIn();
    const outcome = await apiCall(browser);
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    const claims = idTokenOf(outcome);
    assert.equal(claims['iss'], glewlwyd.issuer);
    assert.equal(claims['aud'], 'grafana');
    // Glewlwyd's `sub` is an opaque random string per user (not the username), stable across
    // logins; it sends neither `preferred_username` nor `email_verified`.
    assert.match(String(claims['sub']), /^[A-Za-z0-9]{16,}$/);
    assert.equal(header(outcome, 'x-auth-request-user'), claims['sub']);
    assert.equal(header(outcome, 'x-auth-request-email'), 'alice@example.com');
    assert.equal(header(outcome, 'x-auth-request-groups'), 'admins,users');
    assert.equal(header(outcome, 'x-auth-request-preferred-username'), undefined);
    // Standard deviation: `auth_time` is 0 (1970), not when the user authenticated (OIDC Core
    // §2): Glewlwyd takes it from the login session of the token request, which comes from the
    // server and carries no browser cookie. A `max_age` check must not trust it; no `acr`.
    assert.equal(claims['auth_time'], 0);
    assert.equal(claims['acr'], undefined);
    assert.deepEqual(claims['amr'], ['password']);
    const again = await signedIn();
    assert.equal(idTokenOf(await apiCall(again.browser))['sub'], claims['sub']);
  });

  it("reads Glewlwyd's userinfo at each login: its sub equals the ID token's, the claims merge", async () => {
    const userinfoCalls = async (): Promise<number> => {
      const text = await (await fetch(`${server.adminBase}/metrics`)).text();
      return Number(
        /eoa_provider_request_duration_seconds_count\{endpoint="userinfo"\} (\d+)/.exec(
          text,
        )?.[1] ?? 0,
      );
    };
    const before = await userinfoCalls();
    const { browser } = await signedIn(bob);
    const outcome = await apiCall(browser);
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    assert.equal(await userinfoCalls(), before + 1, 'one userinfo call for the login');
    assert.equal(header(outcome, 'x-auth-request-email'), 'bob@example.com');
    assert.equal(header(outcome, 'x-auth-request-groups'), 'users');
  });

  it('refreshes an expired access token, spending each rotated refresh token once', async () => {
    const { browser, jar } = await signedIn();
    const issued = await glewlwyd.refreshTokens(jar);
    const first = header(await apiCall(browser), 'authorization');
    assert.ok(first);
    const tokens: string[] = [first];
    // Twice: the second refresh only works if the server kept the refresh token Glewlwyd
    // rotated in the first ("always one-time use": spending a spent one disables the chain).
    for (let round = 1; round <= 2; round++) {
      clockOffset += (accessTokenSeconds + 60) * 1000;
      const outcome = await apiCall(browser);
      assert.equal(outcome.kind, 'allow', `refresh ${round}: ${JSON.stringify(outcome)}`);
      const current = header(outcome, 'authorization');
      assert.ok(current && !tokens.includes(current), `refresh ${round}: a new access token`);
      tokens.push(current);
      // Glewlwyd answers a refresh without an ID token (allowed, OIDC Core §12.2): the claims
      // stay those of the login.
      assert.equal(header(outcome, 'x-auth-request-email'), 'alice@example.com');
    }
    // Glewlwyd lists every refresh token alice was ever issued, in any session.
    const now = await glewlwyd.refreshTokens(jar);
    assert.equal(now.total, issued.total + 2, 'two refresh tokens issued by rotation');
    assert.equal(now.enabled, issued.enabled, 'each spent one disabled');
  });

  it('ends the session when Glewlwyd refuses its revoked refresh token, and opens no breaker', async () => {
    const { browser, jar } = await signedIn();
    assert.equal((await apiCall(browser)).kind, 'allow');
    assert.ok((await glewlwyd.revokeRefreshTokens(jar)) >= 1);
    const [refusedBefore, unavailableBefore] = [
      await refreshGrants(server, 'invalid_grant'),
      await refreshGrants(server, 'unavailable'),
    ];
    clockOffset += (accessTokenSeconds + 60) * 1000;
    // Standard deviation: Glewlwyd answers a revoked refresh token with 400 and an empty body,
    // not the JSON `invalid_grant` of RFC 6749 §5.2. By its status, that is a refusal.
    const refused = await apiCall(browser);
    assert.equal(statusOf(refused), 401, JSON.stringify(refused));
    const navigation = await browser.request(`${origin}/dashboards`);
    assert.equal(statusOf(navigation), 302, 'sent to log in again');
    assert.match(locationOf(navigation) ?? '', new RegExp(`^${glewlwyd.issuer}/auth\\?`));
    assert.equal(await refreshGrants(server, 'invalid_grant'), refusedBefore + 1, 'one attempt');
    assert.equal(await refreshGrants(server, 'unavailable'), unavailableBefore, 'no outage');
    // Other users can still sign in and refresh: the refusal was no outage.
    clockOffset = 0;
    const other = await signedIn(bob);
    clockOffset += (accessTokenSeconds + 60) * 1000;
    const refreshed = await apiCall(other.browser);
    assert.equal(refreshed.kind, 'allow', JSON.stringify(refreshed));
    assert.equal(header(refreshed, 'x-auth-request-email'), 'bob@example.com');
  });

  it('logs out at Glewlwyd and comes back to the app; the old cookie is refused', async () => {
    const { browser, jar } = await signedIn();
    const copied = new Map(browser.cookies);
    const outcome = await browser.request(`${origin}/oauth2/logout`);
    assert.equal(statusOf(outcome), 302);
    const endSession = new URL(locationOf(outcome)!);
    assert.equal(endSession.origin + endSession.pathname, `${glewlwyd.issuer}/end_session`);
    assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), `${origin}/`);
    assert.ok(endSession.searchParams.get('id_token_hint'), 'Glewlwyd requires id_token_hint');
    assert.equal(browser.cookies.has('__Host-_eoa_grafana'), false, 'the session cookie expired');
    // Glewlwyd's end_session only redirects to its logout page, a JavaScript app; the script
    // makes that app's API calls. Without an `id_token_hint` Glewlwyd would answer nothing at
    // all (the hint is only RECOMMENDED in RP-Initiated Logout 1.0 §2).
    const { finalUrl } = await glewlwyd.logout(endSession, jar);
    assert.equal(finalUrl.origin + finalUrl.pathname, `${origin}/`, 'back to the app');
    // Standard deviation: Glewlwyd copies `state` into that redirect without encoding it again
    // (`a%2Bb%26c` comes back as `state=a+b&c`): only a state in the base64url alphabet
    // survives.
    const state = endSession.searchParams.get('state');
    assert.match(state ?? '', /^[A-Za-z0-9_-]+$/, 'a base64url state is sent');
    assert.equal(finalUrl.searchParams.get('state'), state, 'state returned');
    const back = await browser.request(finalUrl.href);
    assert.equal(locationOf(back), `${origin}/`, 'the return is confirmed, the state stripped');
    const replay = new AppBrowser(envoy);
    for (const [name, value] of copied) replay.cookies.set(name, value);
    assert.equal(statusOf(await apiCall(replay)), 401, 'the copied cookie no longer works');
  });

  it('ends the session on a back-channel logout token from Glewlwyd', async () => {
    const { browser, jar } = await signedIn();
    const outcome = await apiCall(browser);
    const sid = idTokenOf(outcome)['sid'];
    assert.equal(typeof sid, 'string', 'Glewlwyd puts sid in ID tokens');
    // The user logs out at Glewlwyd itself (another app's logout, or its own profile page):
    // Glewlwyd posts a logout token (RS256, `sid`) to the server. Standard deviation: it has
    // no `exp` (REQUIRED in Back-Channel Logout 1.0 §2.4; Glewlwyd follows draft 06) and `typ`
    // is `JWT`, not the recommended `logout+jwt`; the server accepts both.
    await glewlwyd.endSession(sid as string, jar);
    await waitFor('the session to end', async () => statusOf(await apiCall(browser)) === 401);
  });

  it('accepts a client-credentials access token from Glewlwyd as a bearer token', async () => {
    const token = async (
      params: Record<string, string>,
      credentials = `machine:${machineSecret}`,
    ): Promise<Response> =>
      fetch(`${glewlwyd.issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
      });
    const call = (accessToken: string): Promise<Outcome> =>
      envoy.check({
        url: `${origin}/api/search`,
        headers: [['authorization', `Bearer ${accessToken}`], ...xhr],
      });

    const granted = await token({ scope: 'api', resource: api });
    const body = (await granted.json()) as { access_token: string };
    assert.equal(granted.status, 200);
    const claims = decodeJwt(body.access_token);
    assert.deepEqual(
      [claims['aud'], claims['sub'], claims['client_id']],
      [api, 'machine', 'machine'],
    );
    const allowed = await call(body.access_token);
    assert.equal(allowed.kind, 'allow', JSON.stringify(allowed));
    assert.equal(header(allowed, 'x-auth-request-user'), 'machine');

    // Without a resource indicator, Glewlwyd sets `aud` to the granted scopes ("api"), which
    // is no audience of the app's: refused.
    const scoped = (await (await token({ scope: 'api' })).json()) as { access_token: string };
    assert.equal(decodeJwt(scoped.access_token)['aud'], 'api');
    assert.equal(statusOf(await call(scoped.access_token)), 401);

    // Standard deviations: Glewlwyd answers 403 with an empty body to a request without
    // `scope` (RFC 6749 §5.2: 400 `invalid_scope`), to a wrong secret (401 `invalid_client`),
    // and to the secret form-encoded in the Basic credentials as RFC 6749 §2.3.1 asks (`-` as
    // `%2D`): it compares them as sent, so a client that encodes fails.
    const answers: [string, number, string][] = [];
    for (const [what, response] of [
      ['no scope', await token({})],
      ['wrong secret', await token({ scope: 'api', resource: api }, 'machine:wrong')],
      [
        'form-encoded secret',
        await token(
          { scope: 'api', resource: api },
          `machine:${machineSecret.replaceAll('-', '%2D')}`,
        ),
      ],
    ] as const) {
      answers.push([what, response.status, await response.text()]);
    }
    assert.deepEqual(answers, [
      ['no scope', 403, ''],
      ['wrong secret', 403, ''],
      ['form-encoded secret', 403, ''],
    ]);
  });
});
