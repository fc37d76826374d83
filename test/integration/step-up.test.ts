/**
 * Step-up against oidc-provider: paths that demand an `acr` (`authorization.paths[].acrValues`)
 * or a recent login (`maxAge`) send a navigation to log in again with `acr_values`/`max_age`,
 * answer API callers with RFC 9470's challenge, and the callback refuses a login that does not
 * meet the demand (an `acr` not asked for, an `auth_time` too old or in the future). oidc-provider
 * treats `acr_values` as voluntary and keeps the `acr` of its own session, so an `acr` step-up
 * starts from a browser without a provider session (Keycloak asks for the stronger factor).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { AppBrowser, deniedHeader, locationOf, statusOf } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const secret = 'step-up-client-secret-long-enough';
const origin = 'https://vault.example.com';
const strictOrigin = 'https://strict.example.com';

function userOf(outcome: Outcome): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get('x-auth-request-user') : undefined;
}

describe('step-up with acr_values and max_age', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let log: CapturedLog;
  /** What the provider records as each login's time, in seconds since the epoch. */
  let loginTime = () => Math.floor(Date.now() / 1000);

  before(async () => {
    provider = await startTestProvider({
      clients: ['vault', 'strict'].map((name) => ({
        clientId: name,
        clientSecret: secret,
        redirectUris: [`https://${name}.example.com/oauth2/callback`],
      })),
      acrValues: ['urn:loa:1', 'urn:loa:2'],
      loginTime: () => loginTime(),
    });
    log = captureLog('info');
    server = await startTestServer(
      {
        apps: [
          {
            name: 'vault',
            match: { hosts: ['vault.example.com'] },
            oidc: { issuer: provider.issuer, clientId: 'vault', clientSecret: secret },
            session: { secrets: [testSessionSecret] },
            authorization: {
              paths: [
                { prefix: '/admin/', acrValues: ['urn:loa:2'] },
                { prefix: '/fresh/', maxAge: '5m' },
                { prefix: '/gold/', acrValues: ['urn:loa:3'] },
                { prefix: '/rule/', claims: [{ claim: 'acr', equals: 'urn:loa:2' }] },
              ],
            },
            upstreamHeaders: { 'x-acr': '{{ claims.acr }}' },
          },
          {
            name: 'strict',
            match: { hosts: ['strict.example.com'] },
            oidc: {
              issuer: provider.issuer,
              clientId: 'strict',
              clientSecret: secret,
              extraAuthParams: { max_age: '600' },
            },
            session: { secrets: [testSessionSecret] },
          },
        ],
      },
      { logger: log.logger },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('sends a session without the acr to log in again with acr_values, and keeps the new acr', async () => {
    const b = new AppBrowser(envoy);
    await b.login(`${origin}/`);
    const api = await b.request(`${origin}/admin/keys`, {
      navigate: false,
      headers: [['accept', 'application/json']],
    });
    assert.equal(statusOf(api), 401);
    assert.equal(
      deniedHeader(api, 'www-authenticate'),
      'Bearer realm="vault", error="insufficient_user_authentication", error_description="a stronger or more recent authentication is required", acr_values="urn:loa:2"',
    );
    assert.match(api.kind === 'deny' ? api.body : '', /"insufficient_user_authentication"/);

    b.providerJar = undefined;
    const { authorizationUrl, callbackUrl } = await b.startAndAuthenticate(`${origin}/admin/keys`);
    assert.equal(authorizationUrl.searchParams.get('acr_values'), 'urn:loa:2');
    assert.equal(authorizationUrl.searchParams.get('max_age'), null);
    assert.equal(await b.finish(callbackUrl), `${origin}/admin/keys`);
    const allowed = await b.request(`${origin}/admin/keys`);
    assert.equal(userOf(allowed), 'alice');
    assert.equal(allowed.kind === 'allow' && allowed.upstream.headers.get('x-acr'), 'urn:loa:2');
    // A claims rule reads the acr kept in the session.
    assert.equal(userOf(await b.request(`${origin}/rule/x`)), 'alice');
    const weak = new AppBrowser(envoy);
    await weak.login(`${origin}/`);
    assert.equal(statusOf(await weak.request(`${origin}/rule/x`)), 403);
  });

  it('answers a gRPC caller without the acr with grpc-status 16 and the challenge', async () => {
    const b = new AppBrowser(envoy);
    await b.login(`${origin}/`);
    const outcome = await b.request(`${origin}/admin/pkg.Svc/Call`, {
      navigate: false,
      method: 'POST',
      headers: [['content-type', 'application/grpc-web+proto']],
    });
    assert.equal(outcome.kind === 'deny' && outcome.grpcStatus, 16);
    assert.match(
      deniedHeader(outcome, 'www-authenticate') ?? '',
      /insufficient_user_authentication/,
    );
  });

  it('refuses at the callback an acr the path does not accept, and never loops', async () => {
    const b = new AppBrowser(envoy);
    const { authorizationUrl, callbackUrl } = await b.startAndAuthenticate(`${origin}/gold/bars`);
    assert.equal(authorizationUrl.searchParams.get('acr_values'), 'urn:loa:3');
    const answer = await b.request(callbackUrl.href);
    assert.equal(statusOf(answer), 401);
    assert.equal(locationOf(answer), undefined);
    const line = log.matching(/does not meet the authentication the page demands/).at(-1);
    assert.equal(line?.['shortfall'], 'acr not accepted');
    assert.equal(typeof line?.['requestId'], 'string');
    assert.equal(b.cookies.has('__Host-_eoa_vault'), false, 'no session');
  });

  it('sends a session without auth_time or with an old one to log in again with max_age', async () => {
    const b = new AppBrowser(envoy);
    await b.login(`${origin}/`);
    // Logged in without max_age: oidc-provider leaves auth_time out of the ID token.
    const first = await b.request(`${origin}/fresh/report`);
    assert.equal(statusOf(first), 302);
    const location = new URL(locationOf(first) ?? '');
    assert.equal(location.searchParams.get('max_age'), '300');
    assert.equal(
      log.matching(/step-up/).at(-1)?.['shortfall'],
      'auth_time missing',
      'the reason is logged',
    );

    // A login recorded an hour ago meets no 5m demand: back to the provider, which asks again.
    loginTime = () => Math.floor(Date.now() / 1000) - 3600;
    try {
      const old = new AppBrowser(envoy);
      const { callbackUrl } = await old.startAndAuthenticate(`${origin}/fresh/report`);
      assert.equal(statusOf(await old.request(callbackUrl.href)), 401, 'refused at the callback');
      assert.equal(
        log.matching(/does not meet the authentication/).at(-1)?.['shortfall'],
        'auth_time too old',
      );
    } finally {
      loginTime = () => Math.floor(Date.now() / 1000);
    }

    b.providerJar = undefined;
    const { callbackUrl } = await b.startAndAuthenticate(`${origin}/fresh/report`);
    assert.equal(await b.finish(callbackUrl), `${origin}/fresh/report`);
    assert.equal(userOf(await b.request(`${origin}/fresh/report`)), 'alice');
  });

  it('refuses at the callback an auth_time in the future', async () => {
    loginTime = () => Math.floor(Date.now() / 1000) + 3600;
    try {
      const b = new AppBrowser(envoy);
      const { callbackUrl } = await b.startAndAuthenticate(`${origin}/fresh/x`);
      assert.equal(statusOf(await b.request(callbackUrl.href)), 401);
      assert.equal(
        log.matching(/does not meet the authentication/).at(-1)?.['shortfall'],
        'auth_time in the future',
      );
    } finally {
      loginTime = () => Math.floor(Date.now() / 1000);
    }
  });

  it('checks a max_age sent through extraAuthParams against auth_time', async () => {
    const fresh = new AppBrowser(envoy);
    const { authorizationUrl, callbackUrl } = await fresh.startAndAuthenticate(`${strictOrigin}/`);
    assert.equal(authorizationUrl.searchParams.get('max_age'), '600');
    assert.equal(await fresh.finish(callbackUrl), `${strictOrigin}/`);

    loginTime = () => Math.floor(Date.now() / 1000) - 3600;
    try {
      const old = new AppBrowser(envoy);
      const started = await old.startAndAuthenticate(`${strictOrigin}/`);
      assert.equal(statusOf(await old.request(started.callbackUrl.href)), 401);
    } finally {
      loginTime = () => Math.floor(Date.now() / 1000);
    }
  });
});
