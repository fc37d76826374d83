/**
 * Attack class: forged or replayed back-channel logout tokens (OIDC Back-Channel Logout 1.0
 * §2.4, §2.6). A logout token ends sessions on every replica, so whoever can make one accepted
 * signs any user out at will. Each row is a token POSTed to the back-channel logout path, both
 * through Envoy (a real Check with the body, decoded with Envoy's upstream protos) and straight
 * to the HTTP listener as a provider would, and its safe outcome: 400 `invalid_request` and the
 * user still signed in. The provider is a real oidc-provider that signs ID tokens with RS256
 * only, while its JWKS also holds an ES256 key.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  SignJWT,
  decodeJwt,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWTPayload,
} from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/oidc/logout-token.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';
import { captureLog } from '../resilience/log-capture.ts';

const origin = 'https://grafana.example.com';
const logoutPath = '/oauth2/backchannel-logout';
const clientSecret = 'Hx4Rt8Np2Vc6Lz0Qw3Jm7Bf1Ks5Yd9Ga';
const EVENTS = { [BACKCHANNEL_LOGOUT_EVENT]: {} };

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

interface Victim {
  readonly browser: AppBrowser;
  readonly sid: string;
  readonly idToken: string;
}

interface Row {
  readonly attack: string;
  /** Builds the token aimed at `victim`. */
  readonly token: (victim: Victim) => Promise<string>;
}

describe('logout tokens: only a genuine, fresh, first-seen token from the provider signs anyone out', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let providerPublicPem: string;
  const log = captureLog();

  before(async () => {
    ({ provider, server } = await startAppStack(
      {
        name: 'grafana',
        clientSecret,
        provider: { idTokenSigningAlgs: ['RS256'] },
        // Registered so that ID tokens carry `sid`; the provider never calls it here.
        client: { backchannelLogoutUri: `http://127.0.0.1:9${logoutPath}` },
        oidc: { backchannelLogoutPath: logoutPath },
        app: { passIdToken: true },
      },
      { logger: log.logger },
    ));
    envoy = grpcModeEnvoy(server, { withRequestBody: true });
    providerPublicPem = await exportSPKI(
      (await importJWK(provider.keys.RS256.publicJwk, 'RS256')) as CryptoKey,
    );
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  async function signIn(): Promise<Victim> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${origin}/`);
    const served = await browser.request(`${origin}/dashboards`);
    assert.equal(served.kind, 'allow');
    const idToken =
      served.kind === 'allow' ? (served.upstream.headers.get('x-id-token') ?? '') : '';
    const sid = decodeJwt(idToken)['sid'];
    assert.ok(typeof sid === 'string' && sid !== '', 'the ID token carries sid');
    return { browser, sid, idToken };
  }

  const stillSignedIn = async (victim: Victim): Promise<boolean> =>
    (await victim.browser.request(`${origin}/dashboards`)).kind === 'allow';

  /** The claims of a genuine logout token for `victim`, with `overrides` (undefined deletes). */
  function logoutClaims(victim: Victim, overrides: Record<string, unknown> = {}): JWTPayload {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: provider.issuer,
      aud: 'grafana',
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sub: 'alice',
      sid: victim.sid,
      events: EVENTS,
    };
    for (const [name, value] of Object.entries(overrides)) {
      if (value === undefined) delete claims[name];
      else claims[name] = value;
    }
    return claims;
  }

  const genuine = (
    victim: Victim,
    overrides: Record<string, unknown> = {},
    options: { typ?: string; alg?: 'RS256' | 'ES256' } = {},
  ): Promise<string> => provider.signJwt(logoutClaims(victim, overrides), options);

  /** A genuine token's payload and signature under another protected header. */
  const reheader = async (victim: Victim, header: Record<string, unknown>): Promise<string> => {
    const [, payload, signature] = (await genuine(victim)).split('.') as [string, string, string];
    return `${b64(header)}.${payload}.${signature}`;
  };

  const throughEnvoy = (token: string): Promise<Outcome> =>
    envoy.check({
      method: 'POST',
      url: `${origin}${logoutPath}`,
      headers: [['content-type', 'application/x-www-form-urlencoded']],
      body: new URLSearchParams({ logout_token: token }).toString(),
    });

  const straight = async (token: string): Promise<number> => {
    const response = await fetch(`${server.httpBase}${logoutPath}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'straight' },
      body: new URLSearchParams({ logout_token: token }),
    });
    await response.arrayBuffer();
    return response.status;
  };

  const rows: readonly Row[] = [
    {
      attack: 'alg none',
      token: (v) => reheader(v, { alg: 'none' }).then((t) => t.replace(/[^.]*$/, '')),
    },
    {
      attack: 'HS256 with the provider RSA public key as HMAC secret',
      token: (v) =>
        new SignJWT(logoutClaims(v))
          .setProtectedHeader({ alg: 'HS256', kid: provider.keys.RS256.kid })
          .sign(new TextEncoder().encode(providerPublicPem)),
    },
    {
      attack: 'ES256 with the provider’s own ES256 key, though its ID tokens are RS256 only',
      token: (v) => genuine(v, {}, { alg: 'ES256' }),
    },
    {
      attack: 'a key the provider does not publish, under its kid',
      token: async (v) =>
        new SignJWT(logoutClaims(v))
          .setProtectedHeader({ alg: 'RS256', kid: provider.keys.RS256.kid })
          .sign((await generateKeyPair('RS256')).privateKey),
    },
    { attack: 'events missing', token: (v) => genuine(v, { events: undefined }) },
    {
      attack: 'events without the back-channel logout event',
      token: (v) => genuine(v, { events: { 'http://schemas.openid.net/event/other': {} } }),
    },
    {
      attack: 'the back-channel event not an object',
      token: (v) => genuine(v, { events: { [BACKCHANNEL_LOGOUT_EVENT]: true } }),
    },
    { attack: 'nonce present', token: (v) => genuine(v, { nonce: 'n-0S6_WzA2Mj' }) },
    { attack: 'the victim’s own ID token', token: (v) => Promise.resolve(v.idToken) },
    { attack: 'aud of another client', token: (v) => genuine(v, { aud: 'wiki' }) },
    {
      attack: 'iss of another provider',
      token: (v) => genuine(v, { iss: 'https://idp.evil.example' }),
    },
    {
      attack: 'expired (exp an hour ago)',
      token: (v) =>
        genuine(v, {
          iat: Math.floor(Date.now() / 1000) - 3_700,
          exp: Math.floor(Date.now() / 1000) - 3_600,
        }),
    },
    {
      attack: 'issued too long ago (iat 20 minutes old, no exp)',
      token: (v) => genuine(v, { iat: Math.floor(Date.now() / 1000) - 1_200, exp: undefined }),
    },
    {
      attack: 'issued in the future (iat in an hour)',
      token: (v) => genuine(v, { iat: Math.floor(Date.now() / 1000) + 3_600 }),
    },
    { attack: 'jti missing', token: (v) => genuine(v, { jti: undefined }) },
    {
      attack: 'sid and sub both missing',
      token: (v) => genuine(v, { sid: undefined, sub: undefined }),
    },
    { attack: 'sid empty', token: (v) => genuine(v, { sid: '' }) },
    { attack: 'sid not a string', token: (v) => genuine(v, { sid: { $ne: null } }) },
    { attack: 'typ at+jwt (an access token)', token: (v) => genuine(v, {}, { typ: 'at+jwt' }) },
    { attack: 'typ secevent+jwt', token: (v) => genuine(v, {}, { typ: 'secevent+jwt' }) },
    {
      attack: 'typ not a string',
      token: (v) => reheader(v, { alg: 'RS256', kid: provider.keys.RS256.kid, typ: 7 }),
    },
    {
      attack: 'crit naming an unknown extension',
      token: (v) =>
        reheader(v, { alg: 'RS256', kid: provider.keys.RS256.kid, crit: ['urn:x'], 'urn:x': 1 }),
    },
  ];

  for (const row of rows) {
    it(`${row.attack}: 400 through Envoy and straight, the user still signed in`, async () => {
      const victim = await signIn();
      const token = await row.token(victim);
      const logged = log.matching(/^provider logout refused$/).length;
      const outcome = await throughEnvoy(token);
      assert.equal(outcome.kind === 'deny' && outcome.status, 400, JSON.stringify(outcome));
      assert.match(outcome.kind === 'deny' ? outcome.body : '', /"error":"invalid_request"/);
      // An OAuth error response (RFC 6749 §5.2), as on the direct route.
      assert.deepEqual(Object.keys(JSON.parse(outcome.kind === 'deny' ? outcome.body : '{}')), [
        'error',
        'error_description',
      ]);
      assert.equal(await straight(token), 400);
      assert.ok(await stillSignedIn(victim), 'the session survived');
      // One line for each refusal, with its request id, and never the token.
      const lines = log.matching(/^provider logout refused$/).slice(logged);
      assert.equal(lines.length, 2, 'one line through Envoy, one straight');
      assert.ok(typeof lines[0]?.['requestId'] === 'string' && lines[0]['requestId'] !== '');
      assert.equal(lines[1]?.['requestId'], 'straight');
      assert.ok(!log.text().includes(token.split('.')[2] || token), 'no token in the log');
    });
  }

  it('a refusal is the same answer through Envoy and straight, an RFC 6749 §5.2 body', async () => {
    const victim = await signIn();
    const used = await genuine(victim);
    assert.equal(await straight(used), 200);
    const forms = {
      'not a JWT': new URLSearchParams({ logout_token: 'not.a.token' }).toString(),
      'a forged signature': new URLSearchParams({
        logout_token: `${used.slice(0, used.lastIndexOf('.'))}.${'A'.repeat(342)}`,
      }).toString(),
      'no logout_token': '',
      'a replay': new URLSearchParams({ logout_token: used }).toString(),
    };
    for (const [what, form] of Object.entries(forms)) {
      const viaEnvoy = await envoy.check({
        method: 'POST',
        url: `${origin}${logoutPath}`,
        headers: [['content-type', 'application/x-www-form-urlencoded']],
        body: form,
      });
      const direct = await fetch(`${server.httpBase}${logoutPath}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
      });
      const directBody = await direct.text();
      assert.ok(viaEnvoy.kind === 'deny', what);
      assert.equal(viaEnvoy.status, 400, what);
      assert.equal(direct.status, 400, what);
      assert.equal(direct.headers.get('content-type'), 'application/json', what);
      assert.deepEqual(JSON.parse(viaEnvoy.body), JSON.parse(directBody), what);
      assert.deepEqual(Object.keys(JSON.parse(directBody) as object), [
        'error',
        'error_description',
      ]);
      assert.equal((JSON.parse(directBody) as { error: string }).error, 'invalid_request', what);
    }
    const get = await envoy.check({ method: 'GET', url: `${origin}${logoutPath}` });
    assert.ok(get.kind === 'deny');
    assert.equal(get.status, 405);
    assert.deepEqual(JSON.parse(get.body), {
      error: 'invalid_request',
      error_description: 'POST a logout_token',
    });
  });

  it('a replayed jti: the first delivery signs out, the replay is refused on either path', async () => {
    const victim = await signIn();
    const token = await genuine(victim);
    const first = await throughEnvoy(token);
    assert.equal(first.kind === 'deny' && first.status, 200, JSON.stringify(first));
    assert.equal(await stillSignedIn(victim), false, 'the genuine token signed the user out');
    const replay = await throughEnvoy(token);
    assert.equal(replay.kind === 'deny' && replay.status, 400);
    assert.match(replay.kind === 'deny' ? replay.body : '', /already used/);
    assert.equal(await straight(token), 400);
  });

  it('control: genuine tokens with typ absent, JWT or logout+jwt each sign the user out', async () => {
    for (const typ of [undefined, 'JWT', 'logout+jwt', 'application/logout+jwt']) {
      const victim = await signIn();
      const token = await genuine(victim, {}, typ === undefined ? {} : { typ });
      assert.equal(await straight(token), 200, `typ ${typ ?? 'absent'}`);
      assert.equal(await stillSignedIn(victim), false, `typ ${typ ?? 'absent'}`);
    }
  });
});
