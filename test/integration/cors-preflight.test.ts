/** `cors.allowPreflight`: a CORS preflight passes without a login, and nothing shaped otherwise does. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser } from '../support/browser.ts';
import { EnvoyClient, HttpModeClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const web = 'https://web.example.com';
const closed = 'https://closed.example.com';
const clientSecret = 'cors-preflight-client-secret-long-enough';

const preflightHeaders: [string, string][] = [
  ['origin', 'https://spa.example.org'],
  ['access-control-request-method', 'PUT'],
  ['access-control-request-headers', 'content-type'],
];

function statusOf(outcome: Outcome): number | 'allow' | 'error' {
  return outcome.kind === 'deny' ? outcome.status : outcome.kind;
}

describe('cors.allowPreflight', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      clients: [{ clientId: 'web', clientSecret, redirectUris: [`${web}/oauth2/callback`] }],
      users: [{ sub: 'alice', email: 'alice@example.com', emailVerified: true }],
    });
    const oidc = { issuer: provider.issuer, clientId: 'web', clientSecret };
    server = await startTestServer({
      apps: [
        {
          name: 'web',
          match: { hosts: ['web.example.com'] },
          oidc,
          session: { secrets: [testSessionSecret] },
          bearer: { enabled: true, audiences: ['web'] },
          cors: { allowPreflight: true },
        },
        {
          name: 'closed',
          match: { hosts: ['closed.example.com'] },
          oidc,
          session: { secrets: [testSessionSecret] },
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

  const check = (url: string, method: string, headers: [string, string][]) =>
    envoy.check({ url, method, headers: [['accept', 'application/json'], ...headers] });

  it('lets a preflight through unauthenticated, forged identity headers removed', async () => {
    const outcome = await check(`${web}/api/items`, 'OPTIONS', [
      ...preflightHeaders,
      ['x-auth-request-user', 'admin'],
      ['X_Auth_Request_Email', 'admin@example.com'],
    ]);
    assert.equal(outcome.kind, 'allow');
    if (outcome.kind !== 'allow') return;
    const upstream = outcome.upstream.headers;
    assert.equal(upstream.get('x-auth-request-user'), undefined);
    assert.equal(upstream.get('x_auth_request_email'), undefined);
    assert.equal(upstream.get('origin'), 'https://spa.example.org');
    assert.equal(upstream.get('access-control-request-method'), 'PUT');
  });

  it('refuses everything that is not exactly a preflight', async () => {
    const [origin, requestMethod] = preflightHeaders;
    const cases: [string, string, [string, string][]][] = [
      ['OPTIONS without Origin', 'OPTIONS', [requestMethod!]],
      ['OPTIONS without Access-Control-Request-Method', 'OPTIONS', [origin!]],
      ['OPTIONS with neither', 'OPTIONS', []],
      ['OPTIONS with an empty Origin', 'OPTIONS', [['origin', ''], requestMethod!]],
      [
        'OPTIONS with an empty request method',
        'OPTIONS',
        [origin!, ['access-control-request-method', '']],
      ],
      ['GET with both', 'GET', preflightHeaders],
      ['POST with both', 'POST', preflightHeaders],
      ['DELETE with both', 'DELETE', preflightHeaders],
    ];
    for (const [what, method, headers] of cases) {
      const outcome = await check(`${web}/api/items`, method, headers);
      assert.equal(statusOf(outcome), 401, what);
    }
  });

  it('gives a preflight carrying a valid session cookie no identity, and keeps our cookie from the upstream', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`);
    const session = browser.cookieHeader()!;
    const normal = await check(`${web}/api/items`, 'GET', [['cookie', session]]);
    assert.equal(
      normal.kind === 'allow' && normal.upstream.headers.get('x-auth-request-user'),
      'alice',
    );

    const outcome = await check(`${web}/api/items`, 'OPTIONS', [
      ...preflightHeaders,
      ['cookie', `${session}; theme=dark`],
    ]);
    assert.equal(outcome.kind, 'allow');
    if (outcome.kind !== 'allow') return;
    const upstream = outcome.upstream.headers;
    assert.equal(upstream.get('x-auth-request-user'), undefined, 'no identity on a preflight');
    assert.equal(upstream.get('x-auth-request-email'), undefined);
    assert.equal(upstream.get('cookie'), 'theme=dark', 'the session cookie never goes upstream');
  });

  it('gives a preflight carrying a bearer token no identity either', async () => {
    const token = await provider.signJwt(
      { sub: 'svc', aud: 'web', client_id: 'web', exp: Math.floor(Date.now() / 1000) + 600 },
      { typ: 'at+jwt' },
    );
    const outcome = await check(`${web}/api/items`, 'OPTIONS', [
      ...preflightHeaders,
      ['authorization', `Bearer ${token}`],
    ]);
    assert.equal(outcome.kind, 'allow');
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      undefined,
    );
  });

  it('is off by default: an app without it answers a preflight 401', async () => {
    assert.equal(statusOf(await check(`${closed}/api/items`, 'OPTIONS', preflightHeaders)), 401);
  });

  it('lists every identity header for removal in HTTP mode', async () => {
    const http = new HttpModeClient({
      baseUrl: server.httpBase,
      allowedHeaders: ['origin', 'access-control-request-method', 'x-auth-request-user'],
      timeoutMs: 5_000,
    });
    try {
      const outcome = await http.check({
        url: `${web}/api/items`,
        method: 'OPTIONS',
        headers: [...preflightHeaders, ['x-auth-request-user', 'admin']],
      });
      assert.equal(outcome.kind, 'allow');
      if (outcome.kind !== 'allow') return;
      assert.equal(outcome.upstream.headers.get('x-auth-request-user'), undefined);
      const removals = outcome.authzResponse?.headers.find(
        ([name]) => name === 'x-envoy-auth-headers-to-remove',
      );
      assert.match(removals?.[1] ?? '', /x-auth-request-user/);
    } finally {
      http.close();
    }
  });
});
