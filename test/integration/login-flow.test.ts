import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, locationOf, deniedHeader as header } from '../support/browser.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const origin = 'https://grafana.example.com';
const otherSecret = 'FNJ3yF7DufxQkbIsu7LNreseEGsuICpa7+bUeJpjlUTq';

function appConfig(
  issuer: string,
  overrides: Record<string, unknown> = {},
  session: Record<string, unknown> = {},
) {
  return {
    name: 'grafana',
    match: { hosts: ['grafana.example.com'] },
    oidc: {
      issuer,
      clientId: 'grafana',
      clientSecret: 'grafana-client-secret-long-enough',
      postLogoutRedirectUri: `${origin}/`,
      scopes: ['openid', 'profile', 'email', 'offline_access'],
    },
    session: { secrets: [testSessionSecret], ...session },
    ...overrides,
  };
}

describe('browser login against a real OpenID Provider', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  const browser = () => new AppBrowser(envoy);

  before(async () => {
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'grafana',
          clientSecret: 'grafana-client-secret-long-enough',
          redirectUris: [`${origin}/oauth2/callback`],
          postLogoutRedirectUris: [`${origin}/`],
        },
        {
          clientId: 'restricted',
          clientSecret: 'restricted-client-secret-long-enough',
          redirectUris: ['https://restricted.example.com/oauth2/callback'],
        },
      ],
      users: [
        {
          sub: 'alice',
          email: 'alice@example.com',
          emailVerified: true,
          name: 'Alice Example',
          preferredUsername: 'alice',
          groups: ['admins', 'users'],
        },
        {
          sub: 'bigclaims',
          email: 'big@example.com',
          emailVerified: true,
          groups: ['users'],
          extraClaims: { notes: 'x'.repeat(10_000) },
        },
      ],
    });
    server = await startTestServer({
      apps: [
        appConfig(provider.issuer),
        {
          name: 'restricted',
          match: { hosts: ['restricted.example.com'] },
          oidc: {
            issuer: provider.issuer,
            clientId: 'restricted',
            clientSecret: 'restricted-client-secret-long-enough',
          },
          session: { secrets: [testSessionSecret] },
          authorization: { allowedDomains: ['corp.example'] },
        },
      ],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('sends a navigation to the provider with PKCE S256, state and nonce, and back after login', async () => {
    const b = browser();
    const { authorizationUrl, callbackUrl } = await b.startAndAuthenticate(
      `${origin}/d/home?orgId=1`,
    );
    assert.equal(authorizationUrl.origin + authorizationUrl.pathname, `${provider.issuer}/auth`);
    const q = authorizationUrl.searchParams;
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.ok((q.get('state') ?? '').length >= 32);
    assert.ok((q.get('nonce') ?? '').length >= 32);
    assert.equal(q.get('redirect_uri'), `${origin}/oauth2/callback`);
    assert.ok(
      [...b.cookies.keys()].some((n) => n.startsWith('__Host-_eoa_grafana_login_')),
      'a login-state cookie',
    );

    const location = await b.finish(callbackUrl);
    assert.equal(location, `${origin}/d/home?orgId=1`);
    assert.ok(b.cookies.has('__Host-_eoa_grafana'), 'the session cookie, __Host- prefixed');
    assert.ok(
      ![...b.cookies.keys()].some((n) => n.includes('_login_')),
      'the login-state cookie expired',
    );

    const allowed = await b.request(`${origin}/d/home`, { extraCookies: ['theme=dark'] });
    assert.equal(allowed.kind, 'allow');
    if (allowed.kind !== 'allow') return;
    const upstream = allowed.upstream.headers;
    assert.equal(upstream.get('x-auth-request-user'), 'alice');
    assert.equal(upstream.get('x-auth-request-email'), 'alice@example.com');
    assert.equal(upstream.get('x-auth-request-groups'), 'admins,users');
    assert.equal(upstream.get('x-auth-request-preferred-username'), 'alice');
    assert.equal(
      upstream.get('cookie'),
      'theme=dark',
      'the session cookie is gone, the unrelated one kept',
    );
  });

  it('replaces a forged identity header on an authenticated request', async () => {
    const b = browser();
    await b.login(`${origin}/`);
    const outcome = await b.request(`${origin}/api/x`, {
      headers: [
        ['x-auth-request-user', 'root'],
        ['x-auth-request-groups', 'admins'],
      ],
    });
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      'alice',
    );
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-groups'),
      'admins,users',
    );
    assert.equal(outcome.kind === 'allow' && outcome.upstream.headers.get('cookie'), undefined);
  });

  for (const [what, headers] of [
    [
      'X-Requested-With',
      [
        ['x-requested-with', 'XMLHttpRequest'],
        ['accept', 'text/html'],
      ],
    ],
    ['Accept: application/json', [['accept', 'application/json']]],
    [
      'Sec-Fetch-Mode: cors',
      [
        ['accept', 'text/html'],
        ['sec-fetch-mode', 'cors'],
      ],
    ],
    [
      'a WebSocket upgrade',
      [
        ['accept', 'text/html'],
        ['connection', 'upgrade'],
        ['upgrade', 'websocket'],
      ],
    ],
  ] as const) {
    it(`answers ${what} without a session with 401 and a challenge, never a 302`, async () => {
      const outcome = await envoy.check({ url: `${origin}/api/data`, headers });
      assert.equal(outcome.kind === 'deny' && outcome.status, 401);
      assert.equal(header(outcome, 'www-authenticate'), 'Bearer realm="grafana"');
      assert.equal(header(outcome, 'location'), undefined);
    });
  }

  it('gives gRPC-Web callers grpc-status 16', async () => {
    const outcome = await envoy.check({
      url: `${origin}/pkg.Svc/Call`,
      method: 'POST',
      headers: [
        ['content-type', 'application/grpc-web+proto'],
        ['accept', 'application/grpc-web'],
      ],
    });
    assert.equal(outcome.kind === 'deny' && outcome.grpcStatus, 16);
  });

  it('treats tampered, truncated and foreign-key cookies as no session, never a 500', async () => {
    const b = browser();
    await b.login(`${origin}/`);
    const good = b.cookies.get('__Host-_eoa_grafana')!;
    const foreign = new AppBrowser(envoy);
    const other = await startTestServer({
      apps: [appConfig(provider.issuer, {}, { secrets: [otherSecret] })],
    });
    const otherEnvoy = new EnvoyClient({ target: other.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const ob = new AppBrowser(otherEnvoy);
      await ob.login(`${origin}/`);
      const foreignValue = ob.cookies.get('__Host-_eoa_grafana')!;
      const flipped = good.slice(0, 100) + (good[100] === 'A' ? 'B' : 'A') + good.slice(101);
      for (const value of [flipped, good.slice(0, good.length - 5), foreignValue, 'garbage', '']) {
        foreign.cookies.clear();
        foreign.cookies.set('__Host-_eoa_grafana', value);
        const outcome = await foreign.request(`${origin}/private`);
        assert.equal(outcome.kind === 'deny' && outcome.status, 302, 'sent to log in again');
        assert.match(locationOf(outcome) ?? '', new RegExp(`^${provider.issuer}/auth`));
      }
    } finally {
      otherEnvoy.close();
      await other.close();
    }
  });

  it('still decrypts a cookie from a rotated-out secret while it is listed', async () => {
    const b = browser();
    await b.login(`${origin}/`);
    const rotated = await startTestServer({
      apps: [appConfig(provider.issuer, {}, { secrets: [otherSecret, testSessionSecret] })],
    });
    const rotatedEnvoy = new EnvoyClient({ target: rotated.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const rb = new AppBrowser(rotatedEnvoy);
      for (const [n, v] of b.cookies) rb.cookies.set(n, v);
      const outcome = await rb.request(`${origin}/x`);
      assert.equal(
        outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
        'alice',
      );
    } finally {
      rotatedEnvoy.close();
      await rotated.close();
    }
  });

  it('chunks a session with 10 KB of claims over several cookies that round-trip', async () => {
    const b = browser();
    await b.login(`${origin}/`, 'bigclaims');
    const chunks = [...b.cookies.keys()].filter((n) => /^__Host-_eoa_grafana\.\d+$/.test(n));
    assert.ok(chunks.length >= 3, `chunked: ${[...b.cookies.keys()].join(', ')}`);
    for (const value of b.cookies.values()) assert.ok(value.length < 3_800);
    const outcome = await b.request(`${origin}/x`, { extraCookies: ['keep=1'] });
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      'bigclaims',
    );
    assert.equal(outcome.kind === 'allow' && outcome.upstream.headers.get('cookie'), 'keep=1');
  });

  it('completes two logins started in parallel tabs', async () => {
    const b = browser();
    const first = await b.startAndAuthenticate(`${origin}/tab-one`);
    const second = await b.startAndAuthenticate(`${origin}/tab-two`);
    assert.equal(await b.finish(second.callbackUrl), `${origin}/tab-two`);
    assert.equal(await b.finish(first.callbackUrl), `${origin}/tab-one`);
    assert.equal((await b.request(`${origin}/x`)).kind, 'allow');
  });

  it('refuses a replayed state', async () => {
    const b = browser();
    const { callbackUrl } = await b.startAndAuthenticate(`${origin}/`);
    const saved = new Map(b.cookies);
    await b.finish(callbackUrl);
    // The same browser's flow with another code: the state is used, nothing is exchanged.
    const forged = new URL(callbackUrl);
    forged.searchParams.set('code', 'another-code');
    const replay = new AppBrowser(envoy);
    for (const [n, v] of saved) replay.cookies.set(n, v);
    const outcome = await replay.request(forged.href);
    assert.equal(outcome.kind === 'deny' && outcome.status, 400);
    assert.equal(header(outcome, 'location'), undefined, 'no redirect loop');
    // Another browser with the code but not the flow's cookie: refused as well.
    const stranger = await new AppBrowser(envoy).request(callbackUrl.href);
    assert.equal(stranger.kind === 'deny' && stranger.status, 400);
  });

  for (const path of ['//evil.example/x', '/\\evil.example']) {
    it(`keeps a login started from ${path} on the app's own origin`, async () => {
      const b = browser();
      const location = await b.login(`${origin}${path}`);
      assert.equal(new URL(location).origin, origin);
      assert.ok(location.startsWith(`${origin}/`));
    });
  }

  it('shows a readable 401 page when the provider answers error=', async () => {
    const b = browser();
    const start = await b.request(`${origin}/`);
    const state = new URL(locationOf(start)!).searchParams.get('state')!;
    const outcome = await b.request(
      `${origin}/oauth2/callback?error=access_denied&error_description=%3Cscript%3E&state=${state}`,
    );
    assert.equal(outcome.kind === 'deny' && outcome.status, 401);
    assert.equal(header(outcome, 'content-type'), 'text/html; charset=utf-8');
    const body = outcome.kind === 'deny' ? outcome.body : '';
    assert.match(body, /The identity provider answered: access_denied\./);
    assert.ok(!body.includes('script'), 'error_description is never shown');
    assert.equal(header(outcome, 'location'), undefined);
    assert.equal(header(outcome, 'x-frame-options'), 'DENY');
    assert.match(header(outcome, 'content-security-policy') ?? '', /frame-ancestors 'none'/);
  });

  it("never lends the app's origin to an attacker's words on the callback page", async () => {
    // No login started, no state: anyone can link a victim here with text of their choosing.
    const b = browser();
    const phishing = 'Your account is locked. Call +1-800-555-0100 to unlock it';
    for (const query of [
      `error=access_denied&error_description=${encodeURIComponent(phishing)}`,
      `error=${encodeURIComponent(phishing)}`,
    ]) {
      const outcome = await b.request(`${origin}/oauth2/callback?${query}`);
      assert.equal(outcome.kind === 'deny' && outcome.status, 401);
      const body = outcome.kind === 'deny' ? outcome.body : '';
      assert.ok(!body.includes('locked'), body);
      assert.ok(!body.includes('800'), body);
      assert.equal(header(outcome, 'x-frame-options'), 'DENY');
    }
  });

  it('refuses a user outside allowedDomains with 403 and a plain reason, not a login loop', async () => {
    const b = browser();
    const { callbackUrl } = await b.startAndAuthenticate('https://restricted.example.com/');
    const done = await b.request(callbackUrl.href);
    assert.equal(done.kind === 'deny' && done.status, 302);
    const outcome = await b.request('https://restricted.example.com/');
    assert.equal(outcome.kind === 'deny' && outcome.status, 403);
    assert.match(outcome.kind === 'deny' ? outcome.body : '', /email domain not allowed/);
    assert.equal(header(outcome, 'location'), undefined);
  });

  it('logs out: end-session redirect with id_token_hint, cookies expired, the old cookie refused', async () => {
    const b = browser();
    await b.login(`${origin}/`);
    const copied = new Map(b.cookies);
    const outcome = await b.request(`${origin}/oauth2/logout`);
    assert.equal(outcome.kind === 'deny' && outcome.status, 302);
    const location = new URL(locationOf(outcome)!);
    assert.equal(location.origin + location.pathname, `${provider.issuer}/session/end`);
    // The session was served from the decoded-session cache, which does not hold the ID token:
    // the hint is read back from the cookie, and is the ID token the provider issued to alice.
    const hint = location.searchParams.get('id_token_hint') ?? '';
    const claims = JSON.parse(Buffer.from(hint.split('.')[1] ?? '', 'base64url').toString()) as {
      sub?: unknown;
      aud?: unknown;
      iss?: unknown;
    };
    assert.deepEqual([claims.sub, claims.aud, claims.iss], ['alice', 'grafana', provider.issuer]);
    assert.equal(location.searchParams.get('post_logout_redirect_uri'), `${origin}/`);
    assert.equal(location.searchParams.get('client_id'), 'grafana');
    assert.equal(b.cookies.has('__Host-_eoa_grafana'), false, 'the session cookie expired');

    const replay = new AppBrowser(envoy);
    for (const [n, v] of copied) replay.cookies.set(n, v);
    const after = await replay.request(`${origin}/x`);
    assert.equal(after.kind === 'deny' && after.status, 302, 'the copied cookie no longer works');
  });
});

describe('server-side sessions and logout while the provider is down', () => {
  it('refuses the old ticket after logout, and logs out locally with the provider stopped', async () => {
    const provider = await startTestProvider({
      clients: [
        {
          clientId: 'grafana',
          clientSecret: 'grafana-client-secret-long-enough',
          redirectUris: [`${origin}/oauth2/callback`],
          postLogoutRedirectUris: [`${origin}/`],
        },
      ],
    });
    const server = await startTestServer({
      apps: [appConfig(provider.issuer, {}, { store: 'server' })],
    });
    const envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const b = new AppBrowser(envoy);
      await b.login(`${origin}/`);
      const ticket = b.cookies.get('__Host-_eoa_grafana')!;
      assert.match(
        ticket,
        /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/,
        'the cookie is <id>.<key>, no tokens',
      );
      assert.ok(ticket.length < 100);
      assert.equal((await b.request(`${origin}/x`)).kind, 'allow');

      await provider.stop();
      const outcome = await b.request(`${origin}/oauth2/logout`);
      assert.equal(outcome.kind === 'deny' && outcome.status, 302);
      assert.equal(b.cookies.has('__Host-_eoa_grafana'), false);

      const replay = new AppBrowser(envoy);
      replay.cookies.set('__Host-_eoa_grafana', ticket);
      const after = await replay.request(`${origin}/x`, {
        navigate: false,
        headers: [['accept', 'application/json']],
      });
      assert.equal(after.kind === 'deny' && after.status, 401, 'the old ticket is refused');
    } finally {
      envoy.close();
      await server.close();
      await provider.close();
    }
  });
});
