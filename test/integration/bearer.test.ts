import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  SignJWT,
  decodeJwt,
  decodeProtectedHeader,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type CryptoKey,
} from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { bearerAppConfigs, startBearerProviders } from '../support/bearer-providers.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import {
  AppBrowser,
  assertProviderUnavailable,
  deniedHeader as header,
  statusOf,
} from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { captureLog } from '../resilience/log-capture.ts';

const API = 'https://api.example.com/';
const OTHER_API = 'https://billing.example.com/';
const apiOrigin = 'https://api.example.com';
const ordersOrigin = 'https://orders.example.com';
const machineSecret = 'machine-client-secret-long-enough';
const gatewaySecret = 'gateway-client-secret-long-enough';
const introspectorSecret = 'introspector-secret-long-enough';

async function clientCredentials(
  provider: TestProvider,
  options: { resource?: string; scope?: string } = {},
): Promise<string> {
  const response = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`machine:${machineSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      resource: options.resource ?? API,
      scope: options.scope ?? 'api:read api:write',
    }),
  });
  const body = (await response.json()) as { access_token?: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.access_token!;
}

async function metric(server: TestServer, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${server.adminBase}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

const validJwtVerifications =
  /eoa_bearer_verifications_total\{app="api",kind="jwt",outcome="valid"\} (\d+)/;

let nextAddress = 1;
/** A fresh client address, so that the failure throttle of one test never decides another. */
function freshAddress(): string {
  nextAddress += 1;
  return `10.${(nextAddress >> 16) & 255}.${(nextAddress >> 8) & 255}.${nextAddress & 255}`;
}

describe('bearer tokens from a real provider, two replicas on Redis', () => {
  let redis: RedisProcess;
  let provider: TestProvider;
  let opaqueProvider: TestProvider;
  const servers: TestServer[] = [];
  const clients: EnvoyClient[] = [];
  /** What replica 0 logs. */
  const log = captureLog('debug');

  before(async () => {
    redis = await startRedis();
    const secrets = {
      machine: machineSecret,
      gateway: gatewaySecret,
      introspector: introspectorSecret,
    };
    const providers = await startBearerProviders(secrets, { jwt: { resources: [OTHER_API] } });
    ({ jwt: provider, opaque: opaqueProvider } = providers);
    for (let i = 0; i < 2; i++) {
      const server = await startTestServer(
        {
          store: { type: 'redis', redis: { url: redis.url } },
          apps: bearerAppConfigs(providers, secrets, {
            app: {
              passIdToken: true,
              authorization: { paths: [{ prefix: '/ops/', requireRoles: ['operator'] }] },
            },
            bearer: {
              requireJwtType: true,
              requiredScopes: ['api:read'],
              paths: [{ prefix: '/admin/', requiredScopes: ['api:admin'] }],
              failureThrottle: { maxFailures: 5, window: '1m' },
            },
          }),
        },
        i === 0 ? { logger: log.logger } : {},
      );
      servers.push(server);
      clients.push(grpcModeEnvoy(server));
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.close();
    await provider.close();
    await opaqueProvider.close();
    await redis.stop();
  });

  const call = (
    token: string,
    options: { replica?: number; path?: string; source?: string; origin?: string } = {},
  ): Promise<Outcome> =>
    clients[options.replica ?? 0]!.check({
      url: `${options.origin ?? apiOrigin}${options.path ?? '/v1/items'}`,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['accept', 'application/json'],
        ['x-auth-request-email', 'forged@example.com'],
      ],
      sourceAddress: options.source ?? freshAddress(),
    });

  it('allows a client-credentials JWT with identity headers, the authorization header removed', async () => {
    const token = await clientCredentials(provider);
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt');
    const outcome = await call(token);
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    assert.ok(outcome.kind === 'allow');
    assert.equal(outcome.upstream.headers.get('x-auth-request-user'), 'machine');
    assert.equal(outcome.upstream.headers.has('authorization'), false);
    assert.equal(outcome.upstream.headers.has('x-auth-request-email'), false, 'forgery scrubbed');
  });

  it('never forwards our session or login-state cookies with a bearer allow, other cookies kept', async () => {
    const token = await clientCredentials(provider);
    const outcome = await clients[0]!.check({
      url: `${apiOrigin}/v1/items`,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['cookie', '__Host-_eoa_api=stale; _eoa_api.0=chunk; theme=dark'],
      ],
      sourceAddress: freshAddress(),
    });
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    const cookie = outcome.kind === 'allow' ? outcome.upstream.headers.get('cookie') : undefined;
    assert.equal(cookie, 'theme=dark');
  });

  it('serves the same token 100 times with one verification', async () => {
    const token = await clientCredentials(provider);
    const before = await metric(servers[0]!, validJwtVerifications);
    for (let i = 0; i < 100; i++) {
      assert.equal((await call(token)).kind, 'allow', `request ${i}`);
    }
    assert.equal((await metric(servers[0]!, validJwtVerifications)) - before, 1);
  });

  it('refuses forged, foreign and misused tokens with 401 invalid_token, within the JWKS cooldown', async () => {
    const real = await clientCredentials(provider);
    const claims = decodeJwt(real);
    const [encodedHeader, payload, signature] = real.split('.') as [string, string, string];
    const reheader = (h: Record<string, unknown>) =>
      `${Buffer.from(JSON.stringify(h)).toString('base64url')}.${payload}.${signature}`;
    const publicPem = await exportSPKI(
      (await importJWK(provider.keys.RS256.publicJwk, 'RS256')) as CryptoKey,
    );
    const now = Math.floor(Date.now() / 1000);

    // A real ID token for the gateway client, from a browser login.
    const browser = new AppBrowser(clients[0]!);
    await browser.login(`${apiOrigin}/`);
    const loggedIn = await browser.request(`${apiOrigin}/x`);
    const idToken = loggedIn.kind === 'allow' ? loggedIn.upstream.headers.get('x-id-token') : '';
    assert.ok(idToken, 'an ID token was issued');

    const refused: [string, string][] = [
      ['alg none', reheader({ alg: 'none', typ: 'at+jwt' }).replace(/\.[^.]*$/, '.')],
      [
        'HS256 with the public key as secret',
        await new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', kid: provider.keys.RS256.kid, typ: 'at+jwt' })
          .sign(new TextEncoder().encode(publicPem)),
      ],
      ['oversized kid', reheader({ alg: 'RS256', typ: 'at+jwt', kid: 'k'.repeat(300) })],
      ['an ID token', idToken],
      ['a wrong audience', await clientCredentials(provider, { resource: OTHER_API, scope: '' })],
      [
        'an expired token',
        await provider.signJwt(
          { ...claims, iat: now - 7200, exp: now - 3600, jti: randomUUID() },
          { typ: 'at+jwt' },
        ),
      ],
      [
        'a token from another issuer',
        await provider.signJwt(
          { ...claims, iss: 'https://idp.evil.example.com', jti: randomUUID() },
          { typ: 'at+jwt' },
        ),
      ],
      [
        'a tampered payload',
        `${encodedHeader}.${Buffer.from('{"sub":"admin"}').toString('base64url')}.${signature}`,
      ],
    ];
    for (const [name, token] of refused) {
      const outcome = await call(token);
      assert.equal(statusOf(outcome), 401, name);
      assert.match(header(outcome, 'www-authenticate') ?? '', /error="invalid_token"/, name);
      assert.equal(header(outcome, 'location'), undefined, `${name}: never a redirect`);
    }
    // One fetch served every verification so far; the 30 s cooldown allows one more at most.
    assert.ok(provider.counters().jwks <= 2, `JWKS fetched ${provider.counters().jwks} times`);
  });

  it('fetches the JWKS only a handful of times for 1,000 tokens with distinct unknown kids', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const before = provider.counters().jwks;
    const template = { iss: provider.issuer, aud: API, sub: 'machine', scope: 'api:read' };
    const now = Math.floor(Date.now() / 1000);
    const tokens = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) =>
        new SignJWT({ ...template, iat: now, exp: now + 300 })
          .setProtectedHeader({ alg: 'ES256', kid: `unknown-${i}-${randomUUID()}`, typ: 'at+jwt' })
          .sign(privateKey),
      ),
    );
    for (let i = 0; i < tokens.length; i += 100) {
      const outcomes = await Promise.all(
        tokens.slice(i, i + 100).map((token, j) => call(token, { replica: j % 2 })),
      );
      for (const outcome of outcomes) assert.equal(statusOf(outcome), 401);
    }
    const fetches = provider.counters().jwks - before;
    console.log(`# JWKS fetches for 1,000 tokens with unknown kids on two replicas: ${fetches}`);
    assert.ok(fetches <= 4, `JWKS fetched ${fetches} times`);
  });

  it('refuses on replica B, within a second, a jti revoked through the store on replica A', async () => {
    const token = await clientCredentials(provider);
    const { jti, exp } = decodeJwt(token);
    assert.equal((await call(token, { replica: 1 })).kind, 'allow', 'B has it cached');
    await servers[0]!.handle.revokeBearerToken('api', jti!, exp! * 1000);
    const started = Date.now();
    let outcome = await call(token, { replica: 1 });
    while (outcome.kind === 'allow' && Date.now() - started < 1_000) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      outcome = await call(token, { replica: 1 });
    }
    assert.equal(statusOf(outcome), 401, `still allowed after ${Date.now() - started} ms`);
    assert.equal(statusOf(await call(token, { replica: 0 })), 401, 'and on A');
  });

  it('throttles an address after repeated failures with 429 and Retry-After, others unaffected', async () => {
    const valid = await clientCredentials(provider);
    const attacker = freshAddress();
    for (let i = 0; i < 5; i++) {
      assert.equal(statusOf(await call(`not-a-valid-token-${i}`, { source: attacker })), 401);
    }
    const throttled = await call(valid, { source: attacker });
    assert.equal(statusOf(throttled), 429);
    assert.ok(Number(header(throttled, 'retry-after')) >= 1);
    assert.equal((await call(valid, { source: freshAddress() })).kind, 'allow');
    const before = log.matching(/^bearer token refused$/).length;
    assert.equal(statusOf(await call('bad', { source: freshAddress() })), 401);
    const refusals = log.matching(/^bearer token refused$/).slice(before);
    assert.equal(refusals.length, 1, 'one line');
    assert.match(String(refusals[0]?.['requestId']), /^\d+$/, 'with the request id');
  });

  it('answers 403 insufficient_scope for a path rule the token lacks', async () => {
    const token = await clientCredentials(provider, { scope: 'api:read' });
    assert.equal((await call(token, { path: '/v1/items' })).kind, 'allow');
    const outcome = await call(token, { path: '/admin/users' });
    assert.equal(statusOf(outcome), 403);
    assert.match(
      header(outcome, 'www-authenticate') ?? '',
      /error="insufficient_scope", scope="api:admin"/,
    );
  });

  it('logs a deny by a rule once, naming the rule, never the token', async () => {
    const token = await clientCredentials(provider, { scope: 'api:read' });
    const before = log.matching(/^denied by a rule$/).length;
    assert.equal(statusOf(await call(token, { path: '/ops/restart' })), 403);
    const lines = log.matching(/^denied by a rule$/).slice(before);
    assert.equal(lines.length, 1, 'one line');
    assert.equal(lines[0]?.['via'], 'bearer');
    assert.equal(lines[0]?.['app'], 'api');
    assert.equal(lines[0]?.['level'], 'info');
    assert.match(String(lines[0]?.['rule']), /role/);
    assert.match(String(lines[0]?.['requestId']), /^\d+$/, 'with the request id');
    assert.ok(!log.text().includes(token), 'the token is never logged');
  });

  it('lets a valid session cookie win over a bad bearer header', async () => {
    const browser = new AppBrowser(clients[1]!);
    await browser.login(`${apiOrigin}/`);
    const outcome = await browser.request(`${apiOrigin}/x`, {
      headers: [['authorization', 'Bearer not-a-token']],
    });
    assert.equal(outcome.kind, 'allow');
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      'alice',
    );
  });

  it('introspects opaque tokens once, caches them, and answers 503 during an introspection outage', async () => {
    const token = await clientCredentials(opaqueProvider);
    assert.equal(token.split('.').length, 1, 'opaque');
    const before = opaqueProvider.counters().introspection;
    for (let i = 0; i < 100; i++) {
      const outcome = await call(token, { origin: ordersOrigin });
      assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
      assert.equal(
        outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
        'machine',
      );
    }
    assert.equal(opaqueProvider.counters().introspection - before, 1);
    assert.equal(statusOf(await call('inactive-opaque-token', { origin: ordersOrigin })), 401);

    const fresh = await clientCredentials(opaqueProvider);
    opaqueProvider.injectFault({ target: 'introspection', status: 503 });
    try {
      const outcome = await call(fresh, { origin: ordersOrigin });
      assertProviderUnavailable(outcome, 'a bearer token whose introspection failed');
      const [line, ...more] = log.matching(/bearer token could not be checked/);
      assert.equal(more.length, 0, 'one line');
      assert.match(String(line?.['requestId']), /^\d+$/, 'with the request id');
    } finally {
      opaqueProvider.clearFaults();
    }
  });
});
