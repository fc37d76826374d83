/**
 * The development provider's sign-in form with names nobody configured: a new user with
 * `anyLogin` (the demo), `access_denied` without it, never the provider's 500; and the demo's
 * activity lines, which show a typed name and a requested path on one terminal line.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { checkLine, loginLine } from '../../dev/demo-activity.ts';
import type { Outcome } from '../../dev/envoy-client.ts';
import {
  DEMO_USER,
  loginAccountId,
  startTestProvider,
  type ProviderLogin,
  type TestProvider,
} from '../../dev/test-provider.ts';
import { scriptedLogin } from '../support/scripted-login.ts';

const redirectUri = 'http://127.0.0.1:1/oauth2/callback';

/** An authorization request as the server would send it (PKCE S256). */
function authorizationUrl(provider: TestProvider): URL {
  const url = new URL(`${provider.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: 'app',
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    state: 'state-1',
    nonce: 'nonce-1',
    code_challenge: createHash('sha256').update('a'.repeat(43)).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  return url;
}

describe('names at the development sign-in form', () => {
  const logins: ProviderLogin[] = [];
  let strict: TestProvider;
  let forgiving: TestProvider;

  before(async () => {
    const clients = [{ clientId: 'app', clientSecret: 'app-secret', redirectUris: [redirectUri] }];
    strict = await startTestProvider({ clients, users: [DEMO_USER] });
    forgiving = await startTestProvider({
      clients,
      users: [DEMO_USER],
      anyLogin: true,
      onLogin: (login) => logins.push(login),
    });
  });

  after(async () => {
    await strict?.close();
    await forgiving?.close();
  });

  it('folds case, Unicode form and outer spaces into one account, and refuses what cannot be a name', () => {
    assert.equal(loginAccountId('  Alice '), 'alice');
    assert.equal(loginAccountId('Jose\u0301'), loginAccountId('José'), 'NFD and NFC are one name');
    assert.equal(loginAccountId('李'), '李');
    assert.equal(loginAccountId('x'.repeat(64)), 'x'.repeat(64));
    for (const bad of [
      '',
      '   ',
      'x'.repeat(65),
      'bob\r\nx-auth-request-user: admin',
      'a\u0000b',
      'a\u2028b',
      'a\u001b[31mb',
    ]) {
      assert.equal(loginAccountId(bad), undefined, JSON.stringify(bad));
    }
  });

  it('signs in any name with anyLogin, as a new user in group users, and a known name in any case as that user', async () => {
    for (const [typed, sub] of [
      ['bob', 'bob'],
      ['Alice', 'alice'],
      ['José', 'josé'],
      ['李', '李'],
    ] as const) {
      const { callbackUrl } = await scriptedLogin(authorizationUrl(forgiving), { login: typed });
      assert.ok(callbackUrl.searchParams.has('code'), `${typed}: a code, not an error`);
      assert.deepEqual(logins.at(-1), {
        login: typed,
        outcome: sub === 'alice' ? 'known' : 'new',
        accountId: sub,
      });
      assert.equal(forgiving.findSessions({ accountId: sub }).length > 0, true, typed);
    }
  });

  it('refuses a blank or control-character name with access_denied, even with anyLogin', async () => {
    for (const typed of ['   ', 'eve\r\nset-cookie: x=1']) {
      const { callbackUrl } = await scriptedLogin(authorizationUrl(forgiving), { login: typed });
      assert.equal(callbackUrl.searchParams.get('error'), 'access_denied', JSON.stringify(typed));
      assert.equal(logins.at(-1)?.outcome, 'refused');
    }
  });

  it('answers an unknown name with access_denied without anyLogin, and the next sign-in in that browser works', async () => {
    const refused = await scriptedLogin(authorizationUrl(strict), { login: 'mallory' });
    assert.equal(refused.callbackUrl.searchParams.get('error'), 'access_denied');
    assert.equal(strict.findSessions({ accountId: 'mallory' }).length, 0, 'no session for it');
    const next = await scriptedLogin(authorizationUrl(strict), {
      login: 'alice',
      jar: refused.jar,
    });
    assert.ok(next.callbackUrl.searchParams.has('code'), 'same cookies, a code for alice');
  });
});

describe("the demo's activity lines", () => {
  const now = new Date('2026-01-02T03:04:05Z');
  const context = { issuer: 'http://127.0.0.1:8081', identityHeader: 'x-auth-request-user' };
  const deny = (status: number, headers: [string, string][], body = ''): Outcome => ({
    kind: 'deny',
    status,
    headers,
    body,
  });

  it('names the login and the account it became, on one line whatever was typed', () => {
    assert.equal(
      loginLine({ login: 'José', outcome: 'new', accountId: 'josé' }, now),
      '03:04:05 login  "José" signed in at the provider as josé (a new demo user, group "users")',
    );
    const typed = loginLine({ login: 'a\r\n\u001b[2Jb', outcome: 'refused' }, now);
    assert.ok(
      !/[\r\n]/.test(typed) && !typed.includes('\u001b'),
      'no CR, LF or escape sequence reaches the terminal',
    );
  });

  it('shows method and path of each allow and deny, never the query a callback carries', () => {
    const allow: Outcome = {
      kind: 'allow',
      upstream: {
        method: 'GET',
        path: '/',
        authority: 'x',
        scheme: 'http',
        headers: new Map([['x-auth-request-user', '李']]),
      },
      responseHeaders: [],
    };
    assert.equal(
      checkLine({ method: 'GET', path: '/?a=1' }, allow, context, now),
      '03:04:05 allow  GET / as 李',
    );
    assert.equal(
      checkLine(
        { method: 'GET', path: '/oauth2/callback?code=secret-code&state=s' },
        deny(302, [['location', 'http://127.0.0.1:8080/']]),
        context,
        now,
      ),
      '03:04:05 deny   GET /oauth2/callback 302 to /',
    );
    assert.equal(
      checkLine(
        { method: 'GET', path: '/' },
        deny(302, [['location', `${context.issuer}/auth?x`]]),
        context,
        now,
      ),
      '03:04:05 deny   GET / 302 to the provider to sign in',
    );
    assert.equal(
      checkLine(
        { method: 'GET', path: '/api' },
        deny(401, [], '{"error":"invalid_token"}'),
        context,
        now,
      ),
      '03:04:05 deny   GET /api 401 (invalid_token)',
    );
    const odd = checkLine(
      { method: 'GET', path: `/${'\u001b[2J'.repeat(100)}` },
      deny(403, []),
      context,
      now,
    );
    assert.ok(!odd.includes('\u001b'), 'no escape sequence');
    assert.ok(odd.length < 200, 'a long path is cut');
  });
});
