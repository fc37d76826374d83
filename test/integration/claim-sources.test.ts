/**
 * `oidc.claimsFrom` end to end: rules and header templates see claims that only userinfo or a
 * JWT access token carries (Keycloak's realm roles), and a userinfo answer about another user
 * fails the login with one line naming the cause.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider, type TestUser } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { AppBrowser, statusOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const secret = 'claim-sources-client-secret-long-enough';

/** Alice's userinfo answer, which the tests change as a directory would. */
const aliceUserinfo: Record<string, unknown> = { department: 'finance' };

const users: TestUser[] = [
  {
    sub: 'alice',
    email: 'alice@example.com',
    emailVerified: true,
    userinfoClaims: aliceUserinfo,
    accessTokenClaims: { realm_access: { roles: ['admin'] } },
  },
  {
    sub: 'bob',
    email: 'bob@example.com',
    emailVerified: true,
    userinfoClaims: { department: 'sales' },
    accessTokenClaims: { realm_access: { roles: ['user'] } },
  },
];

function client(name: string) {
  return {
    clientId: name,
    clientSecret: secret,
    redirectUris: [`https://${name}.example.com/oauth2/callback`],
  };
}

function app(name: string, issuer: string, extra: Record<string, unknown>) {
  const { oidc, ...rest } = extra as { oidc?: Record<string, unknown> };
  return {
    name,
    match: { hosts: [`${name}.example.com`] },
    oidc: { issuer, clientId: name, clientSecret: secret, ...oidc },
    session: { secrets: [testSessionSecret] },
    ...rest,
  };
}

function upstream(outcome: Outcome, name: string): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get(name) : undefined;
}

describe('claim sources through the authorizer', () => {
  let keycloakLike: TestProvider;
  let userinfoProvider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let log: CapturedLog;
  /** How far the authorizer's clock is ahead of the provider's, ms. */
  let aheadMs = 0;

  before(async () => {
    keycloakLike = await startTestProvider({
      clients: [client('roles')],
      users,
      defaultResource: 'https://api.example.com',
    });
    userinfoProvider = await startTestProvider({
      clients: [client('dept')],
      users,
      accessTokenFormat: 'opaque',
    });
    log = captureLog('info');
    server = await startTestServer(
      {
        apps: [
          app('roles', keycloakLike.issuer, {
            authorization: { requireRoles: ['admin'] },
            upstreamHeaders: { 'x-roles': '{{ claims.realm_access.roles }}' },
          }),
          app('dept', userinfoProvider.issuer, {
            oidc: { claimsFrom: ['id_token', 'userinfo'] },
            authorization: { claims: [{ claim: 'department', equals: 'finance' }] },
            upstreamHeaders: { 'x-department': '{{ claims.department }}' },
          }),
        ],
      },
      { logger: log.logger, now: () => Date.now() + aheadMs },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await Promise.all([keycloakLike.close(), userinfoProvider.close()]);
  });

  it('requireRoles with the default rolesClaims matches realm roles from the access token', async () => {
    const alice = new AppBrowser(envoy);
    await alice.login('https://roles.example.com/');
    const allowed = await alice.request('https://roles.example.com/admin');
    assert.equal(upstream(allowed, 'x-roles'), 'admin');
    assert.equal(upstream(allowed, 'x-auth-request-user'), 'alice');

    const bob = new AppBrowser(envoy);
    await bob.login('https://roles.example.com/', 'bob');
    assert.equal(statusOf(await bob.request('https://roles.example.com/admin')), 403);
  });

  it('rules and templates see claims served only at userinfo', async () => {
    const alice = new AppBrowser(envoy);
    await alice.login('https://dept.example.com/');
    const allowed = await alice.request('https://dept.example.com/ledger');
    assert.equal(upstream(allowed, 'x-department'), 'finance');

    const bob = new AppBrowser(envoy);
    await bob.login('https://dept.example.com/', 'bob');
    assert.equal(statusOf(await bob.request('https://dept.example.com/ledger')), 403);
  });

  it('fetches userinfo again at each refresh: a changed claim reaches rules and headers', async () => {
    const alice = new AppBrowser(envoy);
    await alice.login('https://dept.example.com/');
    assert.equal(
      upstream(await alice.request('https://dept.example.com/ledger'), 'x-department'),
      'finance',
    );
    const grants = userinfoProvider.counters().grants['refresh_token']?.['success'] ?? 0;
    aheadMs = 10 * 60_000; // past the access token's 300 s: the next request refreshes
    aliceUserinfo['department'] = 'audit';
    try {
      assert.equal(statusOf(await alice.request('https://dept.example.com/ledger')), 403);
      assert.equal(userinfoProvider.counters().grants['refresh_token']?.['success'], grants + 1);
    } finally {
      aheadMs = 0;
      aliceUserinfo['department'] = 'finance';
    }
  });

  it('fails the login when userinfo names another user, with one line naming why', async () => {
    userinfoProvider.injectFault({
      target: 'userinfo',
      status: 200,
      count: 1,
      reply: { contentType: 'application/json', body: '{"sub":"bob","department":"finance"}' },
    });
    const alice = new AppBrowser(envoy);
    const { callbackUrl } = await alice.startAndAuthenticate('https://dept.example.com/');
    const answer = await alice.request(callbackUrl.href);
    assert.equal(statusOf(answer), 401);
    const lines = log.matching(/sign-in response not accepted/);
    const line = lines.at(-1);
    assert.ok(line !== undefined);
    assert.match(String(line['detail']), /userinfo: sub differs from the ID token/);
    assert.equal(typeof line['requestId'], 'string');
    assert.equal(alice.cookies.has('__Host-_eoa_dept'), false, 'no session');
  });

  it('answers 503 at the callback while userinfo is down; the spent code is never replayed', async () => {
    userinfoProvider.injectFault({ target: 'userinfo', status: 502, body: 'html', count: 1 });
    const alice = new AppBrowser(envoy);
    const { callbackUrl } = await alice.startAndAuthenticate('https://dept.example.com/x');
    const grants = userinfoProvider.counters().tokenRequests;
    assert.equal(statusOf(await alice.request(callbackUrl.href)), 503);
    assert.equal(statusOf(await alice.request(callbackUrl.href)), 401, 'told to start again');
    assert.equal(userinfoProvider.counters().tokenRequests, grants + 1, 'one exchange');
    await alice.login('https://dept.example.com/x');
    assert.equal(
      upstream(await alice.request('https://dept.example.com/x'), 'x-department'),
      'finance',
    );
  });
});
