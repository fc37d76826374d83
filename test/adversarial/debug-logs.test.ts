/**
 * Secrets in debug logs: a full life of two apps (cookie and server sessions) — login, allowed
 * requests in both Envoy modes, refresh, refresh and code-exchange failures, tampered cookies,
 * bearer tokens good and forged, revocation failure at logout, back-channel logout tokens good
 * and bad, a config reload — with the
 * logger at `trace`, every line captured. No token, code, cookie value or secret the server was
 * handed, nor any 16-character piece of one, may appear in a line or in the metrics.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.ts';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { grpcModeEnvoy, httpModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, setCookieLines } from '../support/browser.ts';
import type { EnvoyClient, HttpModeClient, Outcome } from '../support/envoy-client.ts';
import { startTestServer, testConfig, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';
const sessionSecret = 'Tg5Wc9Xk2Lq7Rv0Zb4Nh8Jm1Sd6Fy3Pa-9f8e7d6c5b4a';
const clientSecrets = {
  grafana: 'grafana-client-secret-0a1b2c3d4e5f',
  wiki: 'wiki-client-secret-6a7b8c9d0e1f2a3b',
  machine: 'machine-client-secret-4c5d6e7f8091',
} as const;
/** Shortest piece of a secret that counts as recognisable. */
const fragment = 16;

/** The credentials seen during the run, by kind, for the report of a leak. */
class Secrets {
  readonly #byKind = new Map<string, Set<string>>();

  add(kind: string, value: string | undefined): void {
    if (value === undefined || value.length < fragment) return;
    let set = this.#byKind.get(kind);
    if (set === undefined) this.#byKind.set(kind, (set = new Set()));
    set.add(value);
  }

  count(kind: string): number {
    return this.#byKind.get(kind)?.size ?? 0;
  }

  /** Every window of `fragment` characters of every secret (or of one kind), with its kind. */
  windows(only?: string): Map<string, string> {
    const windows = new Map<string, string>();
    for (const [kind, values] of this.#byKind)
      if (only === undefined || kind === only)
        for (const value of values)
          for (let i = 0; i + fragment <= value.length; i++)
            windows.set(value.slice(i, i + fragment), kind);
    return windows;
  }
}

/** The first secret window found in `text`, or undefined. */
function leakIn(text: string, windows: Map<string, string>): string | undefined {
  for (let i = 0; i + fragment <= text.length; i++) {
    const kind = windows.get(text.slice(i, i + fragment));
    if (kind !== undefined) return `${kind}: …${text.slice(Math.max(0, i - 20), i + 40)}…`;
  }
  return undefined;
}

function upstreamHeader(outcome: Outcome, name: string): string | undefined {
  return outcome.kind === 'allow' ? outcome.upstream.headers.get(name) : undefined;
}

describe('secrets in debug logs', () => {
  const lines: string[] = [];
  const secrets = new Secrets();
  let provider: TestProvider;
  let server: TestServer;
  let grpc: EnvoyClient;
  let http: HttpModeClient;
  let clockOffset = 0;
  let metricsText = '';

  before(async () => {
    secrets.add('session secret', sessionSecret);
    for (const [name, value] of Object.entries(clientSecrets))
      secrets.add(`client secret ${name}`, value);

    provider = await startTestProvider({
      defaultResource: API,
      accessTokenTtlSeconds: 300,
      clients: [
        ...(['grafana', 'wiki'] as const).map((name) => ({
          clientId: name,
          clientSecret: clientSecrets[name],
          redirectUris: [`https://${name}.example.com/oauth2/callback`],
          postLogoutRedirectUris: [`https://${name}.example.com/`],
        })),
        {
          clientId: 'machine',
          clientSecret: clientSecrets.machine,
          redirectUris: [],
          grantTypes: ['client_credentials' as const],
        },
      ],
      users: [{ sub: 'alice', email: 'alice@example.com', emailVerified: true, groups: ['a'] }],
    });

    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(line);
        done();
      },
    });
    const app = (name: 'grafana' | 'wiki', store: 'cookie' | 'server') => ({
      name,
      match: { hosts: [`${name}.example.com`] },
      oidc: {
        issuer: provider.issuer,
        clientId: name,
        clientSecret: clientSecrets[name],
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        postLogoutRedirectUri: `https://${name}.example.com/`,
        backchannelLogoutPath: '/oauth2/backchannel-logout',
        revokeOnLogout: true,
      },
      session: { store, secrets: [sessionSecret] },
      passAccessToken: true,
      passIdToken: true,
      bearer: { enabled: true, audiences: [API] },
    });
    const document = {
      log: { level: 'trace' },
      apps: [app('grafana', 'cookie'), app('wiki', 'server')],
    };
    server = await startTestServer(document, {
      logger: createLogger({ level: 'trace', destination: sink }),
      now: () => Date.now() + clockOffset,
    });
    grpc = grpcModeEnvoy(server);
    http = httpModeEnvoy(server, {
      allowedHeaders: ['cookie', 'accept', 'sec-fetch-mode', 'x-forwarded-proto', 'x-request-id'],
      allowedUpstreamHeaders: ['cookie', 'authorization', 'x-id-token', 'x-auth-request-user'],
      allowedClientHeadersOnSuccess: ['set-cookie'],
    });

    await runLife();
    server.handle.reload(testConfig(document));
    metricsText = await (await fetch(`${server.adminBase}/metrics`)).text();
  });

  // Whatever the set-up got to, close it: a failed set-up must fail the file, not hang it.
  after(async () => {
    (grpc as EnvoyClient | undefined)?.close();
    (http as HttpModeClient | undefined)?.close();
    await (server as TestServer | undefined)?.close();
    await (provider as TestProvider | undefined)?.close();
  });

  /** Remembers every cookie value the browser holds and every token an answer carries. */
  function record(b: AppBrowser, outcome: Outcome): Outcome {
    for (const [, value] of b.cookies) secrets.add('cookie value', value);
    for (const line of setCookieLines(outcome)) {
      const pair = line.split(';')[0] ?? '';
      secrets.add('cookie value', pair.slice(pair.indexOf('=') + 1));
    }
    const authorization = upstreamHeader(outcome, 'authorization');
    secrets.add('access token', authorization?.replace(/^Bearer /, ''));
    secrets.add('ID token', upstreamHeader(outcome, 'x-id-token'));
    return outcome;
  }

  async function lifeOf(name: 'grafana' | 'wiki'): Promise<void> {
    const origin = `https://${name}.example.com`;
    const b = new AppBrowser(grpc);
    const { callbackUrl } = await b.startAndAuthenticate(`${origin}/d/1`);
    for (const [, value] of b.cookies) secrets.add('login-state cookie', value);
    secrets.add('authorization code', callbackUrl.searchParams.get('code') ?? undefined);
    await b.finish(callbackUrl);
    for (const [, value] of b.cookies) secrets.add('cookie value', value);

    const allowed = record(b, await b.request(`${origin}/api/x`, { navigate: false }));
    assert.equal(allowed.kind, 'allow');

    // The same session in HTTP mode.
    const viaHttp = await http.check({
      url: `${origin}/api/y`,
      headers: [['cookie', b.cookieHeader()!]],
    });
    assert.equal(viaHttp.kind, 'allow');
    record(b, viaHttp);

    // The access token is near its end: the next request refreshes it.
    clockOffset += 400_000;
    const refreshed = record(b, await b.request(`${origin}/api/z`, { navigate: false }));
    assert.equal(refreshed.kind, 'allow', JSON.stringify(refreshed));

    // A refresh the provider fails: the session is kept or refused, the failure logged.
    clockOffset += 400_000;
    provider.injectFault({ target: 'token', status: 500, count: 3 });
    record(b, await b.request(`${origin}/api/z`, { navigate: false }));
    provider.clearFaults();
    record(b, await b.request(`${origin}/api/z`, { navigate: false }));

    // A tampered session cookie is no session.
    const tampered = [...b.cookies].map(([n, v]) => `${n}=${v.slice(0, -4)}AAAA`);
    for (const pair of tampered) secrets.add('tampered cookie', pair.slice(pair.indexOf('=') + 1));
    const fresh = new AppBrowser(grpc);
    record(fresh, await fresh.request(`${origin}/d/2`, { extraCookies: tampered }));

    // A code exchange the provider refuses.
    const other = new AppBrowser(grpc);
    const second = await other.startAndAuthenticate(`${origin}/d/3`);
    secrets.add('authorization code', second.callbackUrl.searchParams.get('code') ?? undefined);
    for (const [, value] of other.cookies) secrets.add('login-state cookie', value);
    provider.injectFault({ target: 'token', status: 400, count: 1 });
    record(other, await other.request(second.callbackUrl.href));
    provider.clearFaults();

    // Logout with the revocation failing: the refresh token goes to the provider, not the log.
    provider.injectFault({ target: 'revocation', status: 503 });
    record(b, await b.request(`${origin}/oauth2/logout`));
    await waitFor(() => provider.counters().faultsInjected > 0);
    provider.clearFaults();
  }

  /** Logout tokens posted straight to the HTTP listener: one valid, one the app must refuse. */
  async function backchannelLogouts(): Promise<void> {
    const claims = {
      sub: 'alice',
      jti: `jti-${Date.now()}-debug-logs`,
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    };
    const valid = await provider.signJwt({ ...claims, aud: 'grafana' }, { typ: 'logout+jwt' });
    const refused = await provider.signJwt(
      { ...claims, aud: 'grafana', nonce: 'logout tokens carry no nonce' },
      { typ: 'logout+jwt' },
    );
    for (const [token, status] of [
      [valid, 200],
      [refused, 400],
    ] as const) {
      secrets.add('logout token', token);
      const posted = await fetch(`${server.httpBase}/oauth2/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }).toString(),
      });
      assert.equal(posted.status, status, await posted.text());
    }
  }

  async function bearerCalls(): Promise<void> {
    // Back to the provider's time, so that the fresh token is valid.
    clockOffset = 0;
    const response = await fetch(`${provider.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`machine:${clientSecrets.machine}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: API }),
    });
    const token = ((await response.json()) as { access_token: string }).access_token;
    const forged = [
      `${token.slice(0, -6)}AAAAAA`,
      `${token.split('.').slice(0, 2).join('.')}.`,
      `eyJhbGciOiJub25lIn0.${token.split('.')[1]}.`,
      'opaque-random-token-8c1f0e5d2b7a4c3e9f60',
    ];
    secrets.add('bearer token', token);
    for (const value of forged) secrets.add('forged bearer token', value);
    for (const value of [token, ...forged]) {
      for (const client of [grpc, http] as const) {
        const outcome = await client.check({
          url: 'https://grafana.example.com/api/v1',
          headers: [
            ['authorization', `Bearer ${value}`],
            ['accept', 'application/json'],
          ],
        });
        assert.ok(outcome.kind !== 'error', JSON.stringify(outcome));
      }
    }
  }

  async function runLife(): Promise<void> {
    await lifeOf('grafana');
    await lifeOf('wiki');
    await bearerCalls();
    await backchannelLogouts();
    for (const value of provider.storedTokens('RefreshToken')) secrets.add('refresh token', value);
    for (const value of provider.storedTokens('AuthorizationCode'))
      secrets.add('authorization code', value);
  }

  it('refreshed a session on the way', () => {
    assert.ok(provider.counters().grants['refresh_token']?.['success'], 'a refresh grant');
  });

  it('captured the lines of a logger at trace level', () => {
    assert.ok(lines.length > 0);
    const levels = new Set(lines.map((line) => (JSON.parse(line) as { level: string }).level));
    assert.ok(levels.has('debug') && levels.has('info'), [...levels].join());
  });

  it('would see a leak: a 16-character piece of a refresh token in a line is found', () => {
    const refresh = provider.storedTokens('RefreshToken')[0]!;
    const piece = refresh.slice(10, 10 + fragment);
    const windows = secrets.windows();
    assert.match(leakIn(`{"msg":"refreshing","t":"x${piece}y"}`, windows) ?? '', /^refresh token/);
    assert.equal(leakIn(`{"t":"${piece.slice(1)}"}`, windows), undefined, 'shorter is not');
  });

  // Each row: a credential the server handled, how it could reach a log, and the safe outcome:
  // neither it nor any 16-character piece of it is in a log line or in /metrics.
  for (const [kind, how] of [
    ['session secret', 'the config echoed at start or on reload'],
    ['client secret grafana', 'a token request or its failure logged'],
    ['client secret wiki', 'a token request or its failure logged'],
    ['authorization code', 'the callback path and query logged, or a failed exchange'],
    ['access token', 'a refresh response or an upstream header logged'],
    ['ID token', 'an id_token_hint in a logged end-session URL'],
    ['refresh token', 'a failed refresh or revocation logged with its request'],
    ['cookie value', 'the cookie header, a set-cookie or a decoding failure logged'],
    ['login-state cookie', 'a state mismatch logged with the cookie'],
    ['tampered cookie', 'a refused cookie logged as it came'],
    ['bearer token', 'the authorization header logged'],
    ['forged bearer token', 'a refused token logged with its reason'],
    ['logout token', 'a back-channel logout body logged'],
  ] as const) {
    it(`no ${kind} (${how}) in any log line or metric`, () => {
      assert.ok(secrets.count(kind) > 0, `the run handled a ${kind}`);
      const windows = secrets.windows(kind);
      const leaks = [...lines, ...metricsText.split('\n')]
        .map((line) => leakIn(line, windows))
        .filter((leak) => leak !== undefined);
      assert.deepEqual(leaks, []);
    });
  }
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 5_000; !condition();) {
    assert.ok(Date.now() < deadline, 'condition met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}
