/**
 * Pushed authorization requests (RFC 9126) against a real `oidc-provider`: a client the provider
 * requires them of, a provider that requires them of every client, every client authentication
 * method, and the provider failing, refusing or answering nonsense at its PAR endpoint.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import {
  AppBrowser,
  assertProviderUnavailable,
  deniedHeader,
  locationOf,
  setCookieLines,
  statusOf,
} from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';
import { captureLog } from '../resilience/log-capture.ts';

const protos = loadUpstreamProtos();
const secret = 'a-client-secret-that-is-long-enough';

/** What a login's authorization request would carry if it went through the browser. */
const PUSHED_ONLY = ['scope', 'redirect_uri', 'state', 'nonce', 'code_challenge', 'response_type'];

const callbackOf = (name: string) => `https://${name}.example.com/oauth2/callback`;

function app(name: string, issuer: string, oidc: Record<string, unknown> = {}) {
  return {
    name,
    match: { hosts: [`${name}.example.com`] },
    oidc: { issuer, clientId: name, clientSecret: secret, ...oidc },
    session: { secrets: [testSessionSecret] },
  };
}

/** The location of a login's 302 carries `client_id` and `request_uri` only, and is short. */
function assertPushed(authorizationUrl: URL, provider: TestProvider, clientId: string): void {
  assert.equal(authorizationUrl.origin + authorizationUrl.pathname, `${provider.issuer}/auth`);
  assert.deepEqual([...authorizationUrl.searchParams.keys()].sort(), ['client_id', 'request_uri']);
  assert.equal(authorizationUrl.searchParams.get('client_id'), clientId);
  assert.match(authorizationUrl.searchParams.get('request_uri') ?? '', /^urn:ietf:params:oauth:/);
  assert.ok(authorizationUrl.href.length < 200, `${authorizationUrl.href.length} characters`);
  for (const name of PUSHED_ONLY) {
    assert.ok(!authorizationUrl.href.includes(`${name}=`), `${name} is not in the location`);
  }
}

describe('pushed authorization requests against a real provider', () => {
  let provider: TestProvider;
  let requiring: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  const log = captureLog('info');

  before(async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = 'pkjwt-1';
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256' };
    provider = await startTestProvider({
      clients: [
        // Its authorization requests are refused unless pushed: the app says `always`.
        {
          clientId: 'par',
          clientSecret: secret,
          redirectUris: [callbackOf('par')],
          requirePushedAuthorizationRequests: true,
        },
        { clientId: 'plain', clientSecret: secret, redirectUris: [callbackOf('plain')] },
        {
          clientId: 'post',
          clientSecret: secret,
          authMethod: 'client_secret_post',
          redirectUris: [callbackOf('post')],
          requirePushedAuthorizationRequests: true,
        },
        {
          clientId: 'pkjwt',
          authMethod: 'private_key_jwt',
          publicJwk,
          redirectUris: [callbackOf('pkjwt')],
          requirePushedAuthorizationRequests: true,
        },
      ],
    });
    // Requires them of every client, and says so in discovery: `auto` pushes.
    requiring = await startTestProvider({
      par: 'required',
      clients: [{ clientId: 'req', clientSecret: secret, redirectUris: [callbackOf('req')] }],
    });
    server = await startTestServer(
      {
        // The faults below are many in a short time: the token breaker (which PAR calls go
        // through) must not open, so that every case is answered by the provider's reply.
        breakers: { idp: { volumeThreshold: 1000 } },
        apps: [
          app('par', provider.issuer, { par: 'always' }),
          app('plain', provider.issuer),
          app('post', provider.issuer, { par: 'always', clientAuth: 'client_secret_post' }),
          {
            ...app('pkjwt', provider.issuer),
            oidc: {
              issuer: provider.issuer,
              clientId: 'pkjwt',
              par: 'always',
              clientAuth: 'private_key_jwt',
              privateKey: JSON.stringify(privateJwk),
            },
          },
          app('req', requiring.issuer),
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
    await requiring.close();
  });

  // Each fault is injected for the requests it names (`count`); a failed test leaves none over.
  afterEach(() => provider.clearFaults());

  it('a client the provider requires PAR of logs in: the 302 is short, PKCE, state and nonce still hold', async () => {
    const before = provider.counters().parRequests;
    const browser = new AppBrowser(envoy);
    const { authorizationUrl, callbackUrl } = await browser.startAndAuthenticate(
      'https://par.example.com/reports/q3?tab=summary',
    );
    assertPushed(authorizationUrl, provider, 'par');
    assert.equal(provider.counters().parRequests - before, 1, 'one push per login');
    const metrics = await (await fetch(`${server.adminBase}/metrics`)).text();
    const timed =
      /eoa_provider_request_duration_seconds_count\{endpoint="pushed_authorization"\} (\d+)/;
    assert.ok(Number(timed.exec(metrics)?.[1] ?? 0) >= 1, 'the push is timed as a provider call');
    // The state went through the push and came back: ours, unguessable.
    assert.ok((callbackUrl.searchParams.get('state') ?? '').length >= 32);
    assert.ok(
      [...browser.cookies.keys()].some((n) => n.startsWith('__Host-_eoa_par_login_')),
      'a login-state cookie',
    );

    // A callback with another state is refused: the pushed state is the one checked.
    const forged = new URL(callbackUrl);
    forged.searchParams.set('state', 'A'.repeat(43));
    const refused = await new AppBrowser(envoy).request(forged.href);
    assert.equal(statusOf(refused), 400);

    const location = await browser.finish(callbackUrl);
    assert.equal(location, 'https://par.example.com/reports/q3?tab=summary');
    // And the provider does hold the client to it: the same request through the browser fails.
    const classic = new URL(`${provider.issuer}/auth`);
    for (const [name, value] of Object.entries({
      client_id: 'par',
      response_type: 'code',
      redirect_uri: callbackOf('par'),
      scope: 'openid',
      state: 'B'.repeat(43),
      code_challenge: 'C'.repeat(43),
      code_challenge_method: 'S256',
    })) {
      classic.searchParams.set(name, value);
    }
    const unpushed = await fetch(classic, { redirect: 'manual' });
    const answer = new URL(unpushed.headers.get('location') ?? 'x:');
    assert.equal(answer.origin + answer.pathname, callbackOf('par'));
    assert.equal(answer.searchParams.get('error'), 'invalid_request', 'not pushed: refused');
    const allowed = await browser.request('https://par.example.com/reports/q3');
    assert.equal(allowed.kind, 'allow', JSON.stringify(allowed));
    assert.equal(
      allowed.kind === 'allow' && allowed.upstream.headers.get('x-auth-request-user'),
      'alice',
    );
  });

  it('each login pushes its own request: a request_uri is never reused', async () => {
    const first = await new AppBrowser(envoy).request('https://par.example.com/');
    const second = await new AppBrowser(envoy).request('https://par.example.com/');
    const uriOf = (outcome: Outcome) =>
      new URL(locationOf(outcome) ?? 'x:').searchParams.get('request_uri');
    assert.ok(uriOf(first) !== null && uriOf(second) !== null);
    assert.notEqual(uriOf(first), uriOf(second));
  });

  it('a provider that requires PAR of every client gets it with oidc.par auto', async () => {
    const browser = new AppBrowser(envoy);
    const { authorizationUrl, callbackUrl } = await browser.startAndAuthenticate(
      'https://req.example.com/',
    );
    assertPushed(authorizationUrl, requiring, 'req');
    assert.equal(await browser.finish(callbackUrl), 'https://req.example.com/');
  });

  it('authenticates the push as at the token endpoint: client_secret_post and private_key_jwt', async () => {
    for (const name of ['post', 'pkjwt']) {
      const browser = new AppBrowser(envoy);
      const { authorizationUrl, callbackUrl } = await browser.startAndAuthenticate(
        `https://${name}.example.com/`,
      );
      assertPushed(authorizationUrl, provider, name);
      assert.equal(await browser.finish(callbackUrl), `https://${name}.example.com/`, name);
    }
  });

  it('auto does not push where the provider only offers PAR: the classic redirect', async () => {
    const before = provider.counters().parRequests;
    const browser = new AppBrowser(envoy);
    const { authorizationUrl, callbackUrl } = await browser.startAndAuthenticate(
      'https://plain.example.com/',
    );
    assert.equal(authorizationUrl.searchParams.get('redirect_uri'), callbackOf('plain'));
    assert.equal(authorizationUrl.searchParams.get('request_uri'), null);
    assert.equal(provider.counters().parRequests, before);
    assert.equal(await browser.finish(callbackUrl), 'https://plain.example.com/');
  });

  it('a provider failing the push (503) gets the browser a 503 page with Retry-After, never a redirect', async () => {
    provider.injectFault({ target: 'par', status: 503, count: 1 });
    const browser = new AppBrowser(envoy);
    const down = await browser.request('https://par.example.com/');
    assertProviderUnavailable(down, 'a login whose push failed');
    assert.equal(deniedHeader(down, 'location'), undefined);
    assert.deepEqual(setCookieLines(down), [], 'no login state for a login that never started');
    const line = log
      .lines()
      .find((entry) => entry['msg'] === 'check denied by an error' && entry['app'] === 'par');
    assert.equal(line?.['code'], 'IDP_UNAVAILABLE');
    assert.equal(line?.['status'], 503);
    assert.ok(typeof line?.['requestId'] === 'string');
    // The provider is back: the next navigation logs in.
    const { authorizationUrl } = await browser.startAndAuthenticate('https://par.example.com/');
    assertPushed(authorizationUrl, provider, 'par');
  });

  it('a provider refusing the push (400) gets the browser an error page and one log line with its error', async () => {
    provider.injectFault({
      target: 'par',
      status: 400,
      count: 1,
      reply: {
        contentType: 'application/json',
        body: JSON.stringify({ error: 'invalid_request', error_description: 'no PAR for you' }),
      },
    });
    const before = log.lines().length;
    const refused = await new AppBrowser(envoy).request('https://par.example.com/');
    assert.equal(statusOf(refused), 502);
    assert.equal(deniedHeader(refused, 'location'), undefined);
    assert.equal(deniedHeader(refused, 'content-type'), 'text/html; charset=utf-8');
    assert.match(refused.kind === 'deny' ? refused.body : '', /identity provider refused/);
    assert.deepEqual(setCookieLines(refused), []);
    const lines = log
      .lines()
      .slice(before)
      .filter((entry) => entry['app'] === 'par' && entry['level'] !== 30);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.['code'], 'IDP_ERROR');
    assert.equal(lines[0]?.['status'], 400);
    assert.match(String(lines[0]?.['detail']), /^pushed_authorization: invalid_request/);
    assert.ok(!log.text().includes(secret), 'the client secret is never logged');
  });

  it('a bare 4xx (no JSON) is a refusal too', async () => {
    provider.injectFault({ target: 'par', status: 401, body: 'empty', count: 1 });
    const refused = await new AppBrowser(envoy).request('https://par.example.com/');
    assert.equal(statusOf(refused), 502);
    assert.equal(deniedHeader(refused, 'location'), undefined);
  });

  const nonsense: [string, { contentType: string; body: string }][] = [
    ['no request_uri', { contentType: 'application/json', body: '{"expires_in":60}' }],
    [
      'a request_uri that is a number',
      { contentType: 'application/json', body: '{"request_uri":5,"expires_in":60}' },
    ],
    [
      'a request_uri with CR/LF',
      {
        contentType: 'application/json',
        body: JSON.stringify({ request_uri: 'urn:x\r\nset-cookie: a=b', expires_in: 60 }),
      },
    ],
    [
      'a huge request_uri',
      {
        contentType: 'application/json',
        body: JSON.stringify({ request_uri: `urn:${'a'.repeat(100_000)}`, expires_in: 60 }),
      },
    ],
    [
      'a non-ASCII request_uri',
      {
        contentType: 'application/json',
        body: JSON.stringify({ request_uri: 'urn:ünïcødé', expires_in: 60 }),
      },
    ],
    ['no expires_in', { contentType: 'application/json', body: '{"request_uri":"urn:x:y"}' }],
    ['an HTML page', { contentType: 'text/html', body: '<html><body>Welcome</body></html>' }],
    ['JSON that is not an object', { contentType: 'application/json', body: '["urn:x:y"]' }],
  ];
  for (const [what, reply] of nonsense) {
    it(`a provider answering ${what} gets a clean 503, never a redirect`, async () => {
      provider.injectFault({ target: 'par', status: 201, count: 1, reply });
      const before = provider.counters().parRequests;
      const outcome = await new AppBrowser(envoy).request('https://par.example.com/');
      assert.equal(provider.counters().parRequests - before, 1, `${what}: answered by the reply`);
      assertProviderUnavailable(outcome, what);
      assert.equal(deniedHeader(outcome, 'location'), undefined, what);
      assert.deepEqual(setCookieLines(outcome), [], what);
      if (outcome.kind === 'deny') {
        for (const [name, value] of outcome.headers) {
          assert.ok(!/[\r\n]/.test(name + value), `${what}: no CR/LF in ${name}`);
        }
      }
    });
  }
});

describe('a pushed authorization request that outlasts the budget', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'par',
          clientSecret: secret,
          redirectUris: [callbackOf('par')],
          requirePushedAuthorizationRequests: true,
        },
      ],
    });
    server = await startTestServer({
      request: { budget: '300ms' },
      apps: [app('par', provider.issuer, { par: 'always' })],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('is answered 503 with Retry-After within the budget, as a page that reloads, never a redirect', async () => {
    provider.injectFault({ target: 'par', latencyMs: 1_500, count: 1 });
    const slow = await new AppBrowser(envoy).request('https://par.example.com/');
    assert.equal(statusOf(slow), 503);
    assert.ok(Number(deniedHeader(slow, 'retry-after')) >= 1);
    assert.equal(deniedHeader(slow, 'location'), undefined);
    assert.match(slow.kind === 'deny' ? slow.body : '', /<meta http-equiv="refresh"/);
    assert.deepEqual(setCookieLines(slow), []);
  });
});
