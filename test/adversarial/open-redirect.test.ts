/**
 * Open redirect: every place the server sends a browser — after login (the original target), at
 * logout, to the provider — stays on the app's origin or goes to its provider, whatever the
 * attacker puts in the path, the query, the host or forwarding headers. Each row is an attack and
 * the safe outcome, through Envoy's protos (gRPC mode) and as Envoy's http_service applies a
 * response (HTTP mode), against a real OpenID Provider.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { grpcModeEnvoy, httpModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, locationOf, setCookieLines } from '../support/browser.ts';
import {
  normaliseRequest,
  type EnvoyClient,
  type HttpModeClient,
  type Outcome,
} from '../support/envoy-client.ts';
import { scriptedLogin, scriptedLogout } from '../support/scripted-login.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';

const origin = 'https://grafana.example.com';
const clientSecret = 'grafana-client-secret-long-enough';

/** The bytes of a header value a browser would act on: printable ASCII only, no `\`. */
const printableAscii = /^[\x21-\x5b\x5d-\x7e]+$/;

/** Where a browser goes on this Location, resolved as browsers resolve it (WHATWG URL). */
function assertStaysOn(location: string | undefined, allowed: readonly string[]): URL {
  assert.ok(location !== undefined, 'a Location');
  assert.match(location, printableAscii, 'only printable ASCII reaches the Location header');
  const target = new URL(location, origin);
  assert.ok(allowed.includes(target.origin), `${location} leaves for ${target.origin}`);
  return target;
}

/** No header value of the answer carries CR, LF or NUL. */
function assertNoLineBreaks(outcome: Outcome): void {
  const headers = outcome.kind === 'deny' ? outcome.headers : [];
  for (const [name, value] of headers) assert.doesNotMatch(value, /[\r\n\0]/, name);
}

/** Login return targets: the path and query the browser first asked for. */
const loginTargets: readonly (readonly [attack: string, pathAndQuery: string])[] = [
  ['protocol-relative //evil.com', '//evil.com/x'],
  ['backslash /\\evil.com (browsers read \\ as /)', '/\\evil.com'],
  ['backslashes mixed /\\/evil.com', '/\\/evil.com/'],
  ['an absolute URL as the path', '/https://evil.com/'],
  ['scheme without slashes https:evil.com', '/https:evil.com'],
  ['encoded slashes /%2f%2fevil.com', '/%2f%2fevil.com'],
  ['encoded backslashes /%5c%5cevil.com', '/%5c%5cevil.com'],
  ['a javascript: target', '/javascript:alert(document.domain)'],
  ['a data: target', '/data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='],
  ['encoded CR/LF to split the Location header', '/x%0d%0aSet-Cookie:%20pwned=1'],
  ['userinfo /@evil.com', '/@evil.com'],
  ['rd= parameter', '/?rd=https://evil.com/'],
  [
    'return_to, next and redirect_uri parameters',
    '/?return_to=//evil.com&next=https:evil.com&redirect_uri=https%3A%2F%2Fevil.com',
  ],
  ['quotes and angle brackets', '/"><script>alert(1)</script>'],
];

/** Targets only a gRPC CheckRequest can carry (Node's HTTP client refuses to send them raw). */
const grpcOnlyTargets: readonly (readonly [attack: string, pathAndQuery: string])[] = [
  ['unicode division slashes /\u2215\u2215evil.com', '/\u2215\u2215evil.com'],
  ['fullwidth solidus /\uff0f\uff0fevil.com', '/\uff0f\uff0fevil.com'],
  ['ideographic full stop look-alike host', '/\u3002evil.com/\u2025/'],
  ['an emoji and a right-to-left override', '/\u{1f600}/\u202eevil.com'],
];

describe('open redirect', () => {
  let provider: TestProvider;
  let server: TestServer;
  let grpcEnvoy: EnvoyClient;
  let httpEnvoy: HttpModeClient;

  before(async () => {
    ({ provider, server } = await startAppStack({
      name: 'grafana',
      clientSecret,
      provider: { users: [{ sub: 'alice', email: 'alice@example.com', emailVerified: true }] },
      client: { postLogoutRedirectUris: [`${origin}/`] },
      oidc: { postLogoutRedirectUri: `${origin}/` },
    }));
    grpcEnvoy = grpcModeEnvoy(server);
    // The lists of envoy/envoy-http.yaml.
    httpEnvoy = httpModeEnvoy(server, {
      allowedHeaders: [
        'cookie',
        'accept',
        'content-type',
        'upgrade',
        'x-requested-with',
        'sec-fetch-mode',
        'x-forwarded-proto',
        'x-forwarded-for',
        'x-request-id',
      ],
      allowedUpstreamHeaders: ['cookie', 'authorization', 'x-id-token', 'x-auth-request-user'],
      allowedClientHeadersOnSuccess: ['set-cookie'],
      allowedClientHeaders: ['location', 'set-cookie', 'www-authenticate', 'content-type'],
    });
  });

  after(async () => {
    grpcEnvoy.close();
    httpEnvoy.close();
    await server.close();
    await provider.close();
  });

  const modes = {
    grpc: () => new AppBrowser(grpcEnvoy),
    // Same `check(request)` contract; the browser only calls that.
    http: () => new AppBrowser(httpEnvoy),
  } as const;

  for (const [mode, browser] of Object.entries(modes)) {
    for (const [attack, target] of loginTargets) {
      it(`${mode}: login started at ${attack} returns to the app's origin`, async () => {
        const b = browser();
        const location = await b.login(`${origin}${target}`);
        const landed = assertStaysOn(location, [origin]);
        assert.equal(landed.host, 'grafana.example.com');
      });
    }
  }

  for (const [attack, target] of grpcOnlyTargets) {
    it(`grpc: login started at ${attack} returns to the app's origin, ASCII only`, async () => {
      const location = await modes.grpc().login(`${origin}${target}`);
      assertStaysOn(location, [origin]);
    });
  }

  it('a very long target still logs in: every cookie fits a browser, the way back is on origin', async () => {
    // Browsers drop a cookie over 4,096 bytes (RFC 6265 §6.1): the login-state cookie holding a
    // 20 KB target never came back, and the callback failed.
    const b = modes.grpc();
    const long = `/search?q=${'a'.repeat(20_000)}`;
    const start = await b.request(`${origin}${long}`);
    for (const line of setCookieLines(start))
      assert.ok(line.length <= 4096, `${line.length} bytes`);
    const { callbackUrl } = await scriptedLoginFrom(b, start);
    const location = await b.finish(callbackUrl);
    assertStaysOn(location, [origin]);
    assert.equal(location, `${origin}/search`, 'the query is dropped, the path kept');
  });

  it('X-Forwarded-Host and Forwarded: host= are ignored: the way to the provider and back is on origin', async () => {
    const b = modes.grpc();
    const spoof: [string, string][] = [
      ['x-forwarded-host', 'evil.com'],
      ['forwarded', 'host=evil.com;proto=https'],
      ['x-original-url', 'https://evil.com/'],
      ['x-rewrite-url', '//evil.com/'],
    ];
    const start = await b.request(`${origin}/dashboard`, { headers: spoof });
    const toProvider = assertStaysOn(locationOf(start), [new URL(provider.issuer).origin]);
    assert.equal(toProvider.searchParams.get('redirect_uri'), `${origin}/oauth2/callback`);
    const { callbackUrl } = await scriptedLoginFrom(b, start);
    const done = await b.request(callbackUrl.href, { headers: spoof });
    assert.equal(assertStaysOn(locationOf(done), [origin]).pathname, '/dashboard');
  });

  it('a Host of another domain gets no app, no redirect', async () => {
    const outcome = await grpcEnvoy.check({
      url: 'https://evil.com/',
      headers: [['accept', 'text/html']],
    });
    assert.equal(outcome.kind, 'deny');
    assert.equal(locationOf(outcome), undefined);
  });

  it('a Host of another domain on a route that names the app: the provider refuses the redirect URI, no code leaves', async () => {
    // envoy.yaml names the app per virtual host; a catch-all host (domains: ['*']) would send
    // any Host here. The way out goes to the provider only, and the provider accepts only the
    // registered redirect URI.
    const outcome = await grpcEnvoy.check(
      { url: 'https://evil.com/x', headers: [['accept', 'text/html']] },
      { contextExtensions: { app: 'grafana' } },
    );
    const toProvider = assertStaysOn(locationOf(outcome), [new URL(provider.issuer).origin]);
    const answer = await fetch(toProvider, { redirect: 'manual' });
    const next = answer.headers.get('location');
    assert.ok(
      next === null || !next.startsWith('https://evil.com'),
      `the provider sent the browser to ${next}`,
    );
  });

  for (const [attack, raw] of [
    ['a raw CR/LF in the target', '/x\r\nlocation: https://evil.com/'],
    ['a raw NUL in the target', '/x\u0000evil'],
    ['an absolute-form target https://evil.com', 'https://evil.com/'],
    ['a scheme-only target https:evil.com', 'https:evil.com'],
    ['a javascript: target without a slash', 'javascript:alert(1)'],
    ['a data: target without a slash', 'data:text/html,x'],
    ['a backslash-first target', '\\\\evil.com'],
  ] as const) {
    it(`grpc: ${attack} is refused (400) with no Location and no line break in any header`, async () => {
      const normalised = normaliseRequest({
        url: `${origin}/`,
        headers: [['accept', 'text/html']],
      });
      const request = {
        ...normalised,
        path: raw,
        lines: normalised.lines.map(([n, v]) => [n, n === ':path' ? raw : v] as const),
      };
      const { response } = await grpcEnvoy.checkRaw(grpcEnvoy.buildCheckRequest(request));
      assert.ok(response !== undefined);
      assert.equal(response.denied_response?.status?.code, 400);
      const headers = response.denied_response?.headers ?? [];
      assert.ok(!headers.some((h) => h.header?.key === 'location'));
      for (const h of headers) assert.doesNotMatch(h.header?.value ?? '', /[\r\n\0]/);
    });
  }

  for (const [mode, browser] of Object.entries(modes)) {
    it(`${mode}: logout ignores post_logout_redirect_uri, rd and redirect_uri in the request`, async () => {
      const b = browser();
      await b.login(`${origin}/`);
      const jar = b.providerJar;
      const out = await b.request(
        `${origin}/oauth2/logout?post_logout_redirect_uri=https://evil.com/&rd=https://evil.com/&redirect_uri=//evil.com/`,
        { headers: [['x-forwarded-host', 'evil.com']] },
      );
      assertNoLineBreaks(out);
      const endSession = assertStaysOn(locationOf(out), [new URL(provider.issuer).origin]);
      assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), `${origin}/`);
      // Through the provider's own logout pages, the browser lands on the registered URI.
      const finished = await scriptedLogout(endSession, jar === undefined ? {} : { jar });
      assert.equal(finished.finalUrl.origin, origin);
    });
  }
});

/** Walks the provider's login pages from a 302 the browser already received. */
async function scriptedLoginFrom(b: AppBrowser, start: Outcome): Promise<{ callbackUrl: URL }> {
  assert.equal(start.kind === 'deny' && start.status, 302);
  const result = await scriptedLogin(new URL(locationOf(start)!), { login: 'alice' });
  b.providerJar = result.jar;
  return { callbackUrl: result.callbackUrl };
}
