/**
 * A session too large for the cookie store (a user in 1,500 groups) gets a readable 431 that
 * names `session.store: server`, in both Envoy modes, logged once with the request id — never a
 * failed Check that Envoy's `status_on_error` or `failure_mode_allow` would decide.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { grpcModeEnvoy, httpModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, setCookieLines, deniedHeader as header } from '../support/browser.ts';
import type { EnvoyClient, HttpModeClient, Outcome } from '../support/envoy-client.ts';
import { signInAppConfig, startTestServer, type TestServer } from '../support/test-server.ts';

const clientSecret = 'Qm7xT2vK9pL4wR8sN3dF6hJ1';
const cookieOrigin = 'https://big.example.com';
const serverOrigin = 'https://tickets.example.com';
const manyGroups = Array.from({ length: 1_500 }, (_, i) => `team-${String(i).padStart(4, '0')}`);
/** The user whose groups grow between login and refresh (mutated by a test). */
const growingGroups = ['team-a'];
const tooLarge = /session too large for the cookie store/;

function bodyOf(outcome: Outcome): string {
  return outcome.kind === 'deny' ? outcome.body : '';
}

function app(name: string, issuer: string, session: Record<string, unknown>) {
  return signInAppConfig(
    {
      name,
      clientSecret,
      oidc: { probeInterval: '1h' },
      session,
      // The provider's access tokens live 300 s: every request with a session refreshes.
      app: { refresh: { skew: '10m' } },
    },
    issuer,
  );
}

describe('a session too large for the cookie store', () => {
  let provider: TestProvider;
  let server: TestServer;
  let log: CapturedLog;
  let grpc: EnvoyClient;
  let httpMode: HttpModeClient;

  before(async () => {
    provider = await startTestProvider({
      clients: [
        { clientId: 'big', clientSecret, redirectUris: [`${cookieOrigin}/oauth2/callback`] },
        { clientId: 'tickets', clientSecret, redirectUris: [`${serverOrigin}/oauth2/callback`] },
      ],
      users: [
        { sub: 'many', email: 'many@example.com', emailVerified: true, groups: manyGroups },
        { sub: 'grower', email: 'grower@example.com', emailVerified: true, groups: growingGroups },
      ],
    });
    log = captureLog('info');
    server = await startTestServer(
      {
        apps: [
          app('big', provider.issuer, {}),
          app('tickets', provider.issuer, { store: 'server' }),
        ],
      },
      { logger: log.logger },
    );
    grpc = grpcModeEnvoy(server);
    httpMode = httpModeEnvoy(server, {
      allowedHeaders: ['cookie', 'accept', 'sec-fetch-mode', 'user-agent', 'x-request-id'],
      allowedUpstreamHeaders: ['x-auth-request-user', 'x-auth-request-groups'],
    });
  });

  after(async () => {
    grpc.close();
    httpMode.close();
    await server.close();
    await provider.close();
  });

  for (const [mode, caller] of [
    ['gRPC', () => grpc],
    ['HTTP', () => httpMode],
  ] as const) {
    it(`answers the callback with a 431 page naming session.store: server (${mode} mode)`, async (t) => {
      const before = log.matching(tooLarge).length;
      const browser = new AppBrowser(caller());
      const { callbackUrl } = await browser.startAndAuthenticate(`${cookieOrigin}/home`, 'many');
      const outcome = await browser.request(callbackUrl.href);
      assert.equal(outcome.kind, 'deny', `a decision, not a failed Check: ${outcome.kind}`);
      assert.equal(outcome.kind === 'deny' && outcome.status, 431);
      assert.equal(header(outcome, 'content-type'), 'text/html; charset=utf-8');
      assert.match(bodyOf(outcome), /session\.store: server/);
      assert.equal(header(outcome, 'location'), undefined, 'no redirect, no loop');
      assert.deepEqual([...browser.cookies.keys()], [], 'the used login state expired, no session');

      const lines = log.matching(tooLarge).slice(before);
      assert.equal(lines.length, 1, 'logged once');
      assert.equal(typeof lines[0]!['requestId'], 'string');
      assert.notEqual(lines[0]!['requestId'], '');
      assert.equal(lines[0]!['app'], 'big');
      t.diagnostic(
        `sealed session ${String(lines[0]!['sealedLength'])} characters, cookie store holds ${String(lines[0]!['limit'])}`,
      );
      assert.doesNotMatch(log.text(), /team-0042/, 'no claim in the log');
    });
  }

  it('answers an API client at the callback with JSON', async () => {
    const browser = new AppBrowser(grpc);
    const { callbackUrl } = await browser.startAndAuthenticate(`${cookieOrigin}/`, 'many');
    const outcome = await browser.request(callbackUrl.href, {
      navigate: false,
      headers: [['accept', 'application/json']],
    });
    assert.equal(outcome.kind === 'deny' && outcome.status, 431);
    assert.equal(header(outcome, 'content-type'), 'application/json');
    const body = JSON.parse(bodyOf(outcome)) as { error: string; message: string };
    assert.equal(body.error, 'session_too_large');
    assert.match(body.message, /session\.store: server/);
  });

  it('serves the same user with session.store: server, as the page advises', async () => {
    const browser = new AppBrowser(grpc);
    await browser.login(`${serverOrigin}/`, 'many');
    const outcome = await browser.request(`${serverOrigin}/x`);
    assert.equal(outcome.kind, 'allow');
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      'many',
    );
  });

  it('ends a session that outgrows its cookies at a refresh, with the same 431, once', async () => {
    const browser = new AppBrowser(grpc);
    await browser.login(`${cookieOrigin}/`, 'grower');
    assert.ok(browser.cookies.has('__Host-_eoa_big'), 'a cookie session');
    growingGroups.push(...manyGroups);
    try {
      const before = log.matching(tooLarge).length;
      // The access token is still valid: the refresh runs in the background and the requests
      // meanwhile are served; the first request that finds its result writes it, and fails.
      let outcome = await browser.request(`${cookieOrigin}/dashboard`);
      for (let tries = 0; outcome.kind === 'allow' && tries < 200; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        outcome = await browser.request(`${cookieOrigin}/dashboard`);
      }
      assert.equal(outcome.kind, 'deny', `a decision, not a failed Check: ${outcome.kind}`);
      assert.equal(outcome.kind === 'deny' && outcome.status, 431);
      assert.match(bodyOf(outcome), /session\.store: server/);
      assert.ok(
        setCookieLines(outcome).some((l) => l.startsWith('__Host-_eoa_big=;')),
        'the session cookie is expired',
      );
      assert.equal(browser.cookies.has('__Host-_eoa_big'), false);
      assert.equal(log.matching(tooLarge).length - before, 1, 'logged once');

      const next = await browser.request(`${cookieOrigin}/dashboard`);
      assert.equal(next.kind === 'deny' && next.status, 302, 'a clean login, not an error');
    } finally {
      growingGroups.splice(1);
    }
  });
});
