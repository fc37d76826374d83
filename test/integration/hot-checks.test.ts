/** Hot Checks reuse what a session or token always gets, and never what belongs to one request. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RawRequest } from '../../src/authz/parse-request.ts';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { CheckResponseEncoder } from '../../src/server/check-response.ts';
import { AppBrowser, locationOf, setCookieLines } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const web = 'https://web.example.com';
const api = 'https://api.example.com';
const clientSecret = 'hot-checks-client-secret-long-enough';
const audience = 'https://api.example.com';

function upstream(outcome: Outcome): ReadonlyMap<string, string> {
  assert.equal(outcome.kind, 'allow', `allowed, not ${JSON.stringify(outcome)}`);
  return outcome.kind === 'allow' ? outcome.upstream.headers : new Map();
}

function responseHeaders(outcome: Outcome): readonly (readonly [string, string])[] {
  return outcome.kind === 'allow' ? outcome.responseHeaders : [];
}

/** The request the gRPC transport would hand over, for calling the authorizer directly. */
function rawRequest(url: string, headers: [string, string][]): RawRequest {
  const { pathname, search, host } = new URL(url);
  return {
    id: '1',
    method: 'GET',
    path: pathname + search,
    authority: host,
    scheme: 'https',
    headers,
    peerAddress: '127.0.0.1',
    contextExtensions: [],
    body: '',
  };
}

describe('hot Checks', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  /** Added to the server's clock, to age sessions without waiting. */
  let clockOffset = 0;

  before(async () => {
    provider = await startTestProvider({
      clients: [
        { clientId: 'web', clientSecret, redirectUris: [`${web}/oauth2/callback`] },
        { clientId: 'api', clientSecret, redirectUris: [`${api}/oauth2/callback`] },
      ],
      // No groups or preferred_username: those identity headers are never set for alice, so a
      // forged copy must be removed instead.
      users: [{ sub: 'alice', email: 'alice@example.com', emailVerified: true }],
    });
    server = await startTestServer(
      {
        apps: [
          {
            name: 'web',
            match: { hosts: ['web.example.com'] },
            oidc: { issuer: provider.issuer, clientId: 'web', clientSecret },
            // Use is recorded (cookie re-issued) at most once per second.
            session: { secrets: [testSessionSecret], idleTimeout: '10s' },
          },
          {
            name: 'api',
            match: { hosts: ['api.example.com'] },
            oidc: { issuer: provider.issuer, clientId: 'api', clientSecret },
            session: { secrets: [testSessionSecret] },
            bearer: { enabled: true, audiences: [audience] },
          },
        ],
      },
      { now: () => Date.now() + clockOffset },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  async function loggedIn(): Promise<AppBrowser> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`);
    return browser;
  }

  it('gives two requests of one session their own cookie header and forged-header removals', async () => {
    const browser = await loggedIn();
    const session = browser.cookieHeader()!;
    const first = upstream(
      await envoy.check({ url: `${web}/a`, headers: [['cookie', `${session}; a=1`]] }),
    );
    assert.equal(first.get('cookie'), 'a=1');
    assert.equal(first.get('x-auth-request-user'), 'alice');

    const second = upstream(
      await envoy.check({
        url: `${web}/a`,
        headers: [
          ['cookie', `b=2; ${session}`],
          ['x-auth-request-groups', 'admins'],
          ['x-auth-request-user', 'mallory'],
        ],
      }),
    );
    assert.equal(second.get('cookie'), 'b=2');
    assert.equal(second.has('x-auth-request-groups'), false, 'a forged header is removed');
    assert.equal(second.get('x-auth-request-user'), 'alice', 'a forged header is overwritten');

    const third = upstream(
      await envoy.check({ url: `${web}/a`, headers: [['cookie', `${session}; a=1`]] }),
    );
    assert.equal(third.get('cookie'), 'a=1', 'nothing of the second request is left');
    assert.equal(third.has('x-auth-request-groups'), false);

    const alone = upstream(await envoy.check({ url: `${web}/a`, headers: [['cookie', session]] }));
    assert.equal(alone.has('cookie'), false, 'a cookie header of ours only is removed');
    assert.equal(alone.get('x-auth-request-email'), 'alice@example.com');
  });

  it('hands a hot session the same allow, whose encoding is then reused', async () => {
    const browser = await loggedIn();
    const raw = rawRequest(`${web}/x`, [['cookie', browser.cookieHeader()!]]);
    const first = await server.handle.authorizer.decide(raw);
    const second = await server.handle.authorizer.decide(raw);
    assert.equal(second.verdict, first.verdict, 'the same allow object');
    assert.ok(Object.isFrozen(second.verdict), 'and it cannot change');
    const encoder = new CheckResponseEncoder();
    // Kept from its second encoding on: an allow encoded once (beyond the memo) is not.
    const once = encoder.encode(first.verdict, 'web');
    const kept = encoder.encode(second.verdict, 'web');
    assert.deepEqual(kept, once);
    assert.equal(encoder.encode(second.verdict, 'web'), kept);

    const other = await server.handle.authorizer.decide(
      rawRequest(`${web}/x`, [['cookie', `${browser.cookieHeader()!}; c=3`]]),
    );
    assert.notEqual(other.verdict, first.verdict, 'another cookie header, another allow');
  });

  it('decides a hot session and a hot bearer token without a promise, and a logout or revocation at once', async () => {
    // The memory store is this process's alone: what was found not revoked stays trusted until
    // a logout or revocation here, so a hot Check waits on nothing.
    const browser = await loggedIn();
    const session = rawRequest(`${web}/x`, [['cookie', browser.cookieHeader()!]]);
    await server.handle.authorizer.decide(session);
    const hot = server.handle.authorizer.decide(session);
    assert.ok(!(hot instanceof Promise), 'a hot session is decided without a promise');
    assert.equal(hot.verdict.kind, 'allow');

    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = await provider.signJwt(
      { sub: 'svc', aud: audience, client_id: 'api', scope: 'api:read', jti: 'hot-sync', exp },
      { typ: 'at+jwt' },
    );
    const bearer = rawRequest(`${api}/v1/things`, [['authorization', `Bearer ${token}`]]);
    await server.handle.authorizer.decide(bearer);
    const hotToken = server.handle.authorizer.decide(bearer);
    assert.ok(!(hotToken instanceof Promise), 'a hot token is decided without a promise');
    assert.equal(hotToken.verdict.kind, 'allow');

    await server.handle.revokeBearerToken('api', 'hot-sync', exp * 1000);
    const revoked = await server.handle.authorizer.decide(bearer);
    assert.equal(revoked.verdict.kind === 'local_reply' && revoked.verdict.status, 401);

    const logout = await browser.request(`${web}/oauth2/logout`);
    assert.equal(logout.kind === 'deny' && logout.status, 302);
    const afterLogout = await server.handle.authorizer.decide(session);
    assert.notEqual(afterLogout.verdict.kind, 'allow', 'the copy of the cookie is refused at once');
  });

  it('never hands a re-issued session cookie to a later request', async () => {
    const browser = await loggedIn();
    const before = await envoy.check({
      url: `${web}/a`,
      headers: [['cookie', browser.cookieHeader()!]],
    });
    assert.deepEqual(responseHeaders(before), [], 'used just now: nothing to re-issue');
    clockOffset += 2_000;
    const touched = await browser.request(`${web}/a`, { navigate: false });
    const reissued = setCookieLines(touched);
    assert.equal(reissued.length, 1, 'use recorded: the cookie is re-issued');
    const next = await browser.request(`${web}/a`, { navigate: false });
    assert.deepEqual(setCookieLines(next), [], 'the next request gets no set-cookie');
    assert.equal(upstream(next).get('x-auth-request-user'), 'alice');
  });

  it('refuses a session after logout, however hot it was', async () => {
    const browser = await loggedIn();
    const cookie = browser.cookieHeader()!;
    for (let i = 0; i < 3; i++) {
      upstream(await envoy.check({ url: `${web}/a`, headers: [['cookie', cookie]] }));
    }
    const logout = await browser.request(`${web}/oauth2/logout`);
    assert.equal(logout.kind === 'deny' && logout.status, 302);
    const after = await envoy.check({
      url: `${web}/a`,
      headers: [
        ['cookie', cookie],
        ['accept', 'text/html'],
      ],
    });
    assert.equal(after.kind === 'deny' && after.status, 302, 'sent to log in again');
  });

  it('refuses a bearer token once revoked, however hot it was, and keeps cookies per request', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = await provider.signJwt(
      { sub: 'svc', aud: audience, client_id: 'api', scope: 'api:read', jti: 'hot-1', exp },
      { typ: 'at+jwt' },
    );
    const check = (cookie?: string) =>
      envoy.check({
        url: `${api}/v1/things`,
        headers: [
          ['authorization', `Bearer ${token}`],
          ...(cookie === undefined ? [] : ([['cookie', cookie]] as [string, string][])),
        ],
      });
    const plain = upstream(await check());
    assert.equal(plain.get('x-auth-request-user'), 'svc');
    assert.equal(plain.has('authorization'), false);
    const withLoginCookie = upstream(await check('_eoa_api_login_abc=x; theme=dark'));
    assert.equal(withLoginCookie.get('cookie'), 'theme=dark', 'our cookies stripped');
    const again = upstream(await check());
    assert.equal(again.get('cookie'), undefined, 'no cookie from the previous request');

    const malformed = await envoy.check({
      url: `${api}/v1/things`,
      headers: [['authorization', `Bearer ${token}"`]],
    });
    assert.equal(
      malformed.kind === 'deny' && malformed.status,
      401,
      'a character outside b64token',
    );

    await server.handle.revokeBearerToken('api', 'hot-1', exp * 1000);
    const revoked = await check();
    assert.equal(revoked.kind === 'deny' && revoked.status, 401);
  });

  it('starts every login with its own state, nonce, PKCE challenge and login cookie', async () => {
    const navigate = () =>
      envoy.check({
        url: `${web}/reports?x=1`,
        headers: [
          ['accept', 'text/html'],
          ['sec-fetch-mode', 'navigate'],
        ],
      });
    const [a, b] = [await navigate(), await navigate()];
    const [urlA, urlB] = [new URL(locationOf(a)!), new URL(locationOf(b)!)];
    for (const name of ['state', 'nonce', 'code_challenge']) {
      assert.match(urlA.searchParams.get(name) ?? '', /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(urlA.searchParams.get(name), urlB.searchParams.get(name), name);
    }
    assert.equal(urlA.searchParams.get('redirect_uri'), `${web}/oauth2/callback`);
    assert.notDeepEqual(setCookieLines(a), setCookieLines(b));
    assert.equal(urlA.origin + urlA.pathname, urlB.origin + urlB.pathname);
  });
});
