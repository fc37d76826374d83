/**
 * Attack class: forged, confused and misused bearer tokens. Each row is a token an attacker
 * presents to an API behind Envoy (a real Check, decoded with Envoy's upstream protos) and its
 * safe outcome: 401 with RFC 6750 `error="invalid_token"`, never a redirect, never a key fetched
 * from where the token says, and no JWKS request for what the header alone condemns. Tokens come
 * from a real OpenID Provider (oidc-provider) that also issues DPoP-bound tokens (RFC 9449).
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  SignJWT,
  calculateJwkThumbprint,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { bearerAppConfigs, startBearerProviders } from '../support/bearer-providers.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { deniedHeader as header, statusOf } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';
const apiOrigin = 'https://api.example.com';
const ordersOrigin = 'https://orders.example.com';
const machineSecret = 'qN4vX8cL2pR6tW0yB3mK7dH1sF5gJ9zA';
const gatewaySecret = 'wE7rT1yU5iO9pA3sD6fG0hJ4kL8zX2cV';
const introspectorSecret = 'mB5nV9cX3zL7kJ1hG4fD8sA2pO6iU0yT';

let nextAddress = 1;
/** A fresh client address per row, so the failure throttle never decides a row. */
function freshAddress(): string {
  nextAddress += 1;
  return `10.77.${(nextAddress >> 8) & 255}.${nextAddress & 255}`;
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A DPoP proof (RFC 9449 §4.2) for a POST to `url`, signed by the client's key. */
async function dpopProof(key: { privateKey: CryptoKey; jwk: JWK }, url: string): Promise<string> {
  return new SignJWT({ htm: 'POST', htu: url, jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

async function clientCredentials(
  provider: TestProvider,
  dpop?: { privateKey: CryptoKey; jwk: JWK },
): Promise<{ token: string; tokenType: string }> {
  const url = `${provider.issuer}/token`;
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`machine:${machineSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      ...(dpop === undefined ? {} : { dpop: await dpopProof(dpop, url) }),
    },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      resource: API,
      scope: 'api:read',
    }),
  });
  const body = (await response.json()) as { access_token?: string; token_type?: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  return { token: body.access_token!, tokenType: body.token_type! };
}

/** A server that answers anything and counts: where `jku`/`x5u` point the verifier. */
async function startAttackerServer(
  jwks: unknown,
): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Row {
  readonly attack: string;
  /** Builds the token from a genuine one (`real`) and its claims. */
  readonly token: () => Promise<string>;
  /** The header alone condemns it: no JWKS request may follow. */
  readonly beforeKeys?: boolean;
  /** Expected `error_description`, when it is not the generic one. */
  readonly description?: RegExp;
  /** Which origin (app) receives it; default the JWT app. */
  readonly origin?: string;
}

describe('bearer tokens: forged, confused and bound tokens are refused with 401 invalid_token', () => {
  let provider: TestProvider;
  let opaqueProvider: TestProvider;
  let server: TestServer;
  let client: EnvoyClient;
  let log: CapturedLog;
  let attacker: Awaited<ReturnType<typeof startAttackerServer>>;
  let real: string;
  let claims: JWTPayload;
  let attackerKey: { privateKey: CryptoKey; jwk: JWK };
  let providerPublicPem: string;
  const rows: Row[] = [];

  before(async () => {
    const secrets = {
      machine: machineSecret,
      gateway: gatewaySecret,
      introspector: introspectorSecret,
    };
    const providers = await startBearerProviders(secrets, {
      jwt: { dpop: true },
      opaque: { dpop: true },
    });
    ({ jwt: provider, opaque: opaqueProvider } = providers);
    log = captureLog('info');
    server = await startTestServer(
      { apps: bearerAppConfigs(providers, secrets) },
      { logger: log.logger },
    );
    client = grpcModeEnvoy(server);

    const pair = await generateKeyPair('ES256', { extractable: true });
    attackerKey = {
      privateKey: pair.privateKey,
      jwk: { ...(await exportJWK(pair.publicKey)), kid: 'attacker', alg: 'ES256', use: 'sig' },
    };
    attacker = await startAttackerServer({ keys: [attackerKey.jwk] });
    providerPublicPem = await exportSPKI(
      (await importJWK(provider.keys.RS256.publicJwk, 'RS256')) as CryptoKey,
    );
    real = (await clientCredentials(provider)).token;
    claims = decodeJwt(real);
  });

  after(async () => {
    client.close();
    await server.close();
    await provider.close();
    await opaqueProvider.close();
    await attacker.close();
  });

  const call = (token: string, origin = apiOrigin): Promise<Outcome> =>
    client.check({
      url: `${origin}/v1/items`,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['accept', 'application/json'],
      ],
      sourceAddress: freshAddress(),
    });

  /** The genuine token's payload under another header; its signature no longer matches. */
  const reheader = (h: Record<string, unknown>): string => {
    const [, payload, signature] = real.split('.') as [string, string, string];
    return `${b64(h)}.${payload}.${signature}`;
  };
  /** The genuine claims, fresh, signed by the attacker's key under `h`. */
  const signedByAttacker = (h: Record<string, unknown>, extra: JWTPayload = {}): Promise<string> =>
    new SignJWT({ ...claims, jti: randomUUID(), ...extra })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...h })
      .sign(attackerKey.privateKey);
  /** The genuine claims plus `extra`, signed by the provider's own RS256 key. */
  const signedByProvider = (extra: JWTPayload): Promise<string> =>
    provider.signJwt({ ...claims, jti: randomUUID(), ...extra }, { typ: 'at+jwt' });

  rows.push(
    {
      attack: 'alg none, signature stripped',
      token: () => Promise.resolve(reheader({ alg: 'none', typ: 'at+jwt' }).replace(/[^.]*$/, '')),
      beforeKeys: true,
    },
    {
      attack: 'alg none, signature kept',
      token: () => Promise.resolve(reheader({ alg: 'none', typ: 'at+jwt' })),
      beforeKeys: true,
    },
    {
      attack: 'alg "NONE" (case games)',
      token: () => Promise.resolve(reheader({ alg: 'NONE', kid: provider.keys.RS256.kid })),
      beforeKeys: true,
    },
    {
      attack: 'alg missing',
      token: () => Promise.resolve(reheader({ kid: provider.keys.RS256.kid, typ: 'at+jwt' })),
      beforeKeys: true,
    },
    {
      attack: 'HS256 signed with the provider RSA public key (PEM) as HMAC secret',
      token: () =>
        new SignJWT({ ...claims, jti: randomUUID() })
          .setProtectedHeader({ alg: 'HS256', kid: provider.keys.RS256.kid, typ: 'at+jwt' })
          .sign(new TextEncoder().encode(providerPublicPem)),
      beforeKeys: true,
    },
    {
      attack: 'HS512 signed with the provider public JWK (JSON) as HMAC secret',
      token: () =>
        new SignJWT({ ...claims, jti: randomUUID() })
          .setProtectedHeader({ alg: 'HS512', kid: provider.keys.RS256.kid })
          .sign(new TextEncoder().encode(JSON.stringify(provider.keys.RS256.publicJwk))),
      beforeKeys: true,
    },
    {
      attack: 'RS256 header over an ES256 signature (alg swapped, provider kid)',
      token: () =>
        signedByAttacker({ kid: provider.keys.RS256.kid }).then((t) => {
          const [, payload, signature] = t.split('.') as [string, string, string];
          return `${b64({ alg: 'RS256', kid: provider.keys.RS256.kid, typ: 'at+jwt' })}.${payload}.${signature}`;
        }),
    },
    {
      attack: 'embedded jwk: the attacker key in the header, its own kid',
      token: () => signedByAttacker({ jwk: attackerKey.jwk, kid: 'attacker' }),
    },
    {
      attack: 'embedded jwk under the provider ES256 kid',
      token: () => signedByAttacker({ jwk: attackerKey.jwk, kid: provider.keys.ES256.kid }),
    },
    {
      attack: 'jku pointing at the attacker JWKS',
      token: () => signedByAttacker({ jku: `${attacker.url}/jwks.json`, kid: 'attacker' }),
    },
    {
      attack: 'x5u pointing at the attacker certificate',
      token: () => signedByAttacker({ x5u: `${attacker.url}/cert.pem`, kid: 'attacker' }),
    },
    {
      attack: 'x5c with a garbage chain under the provider kid',
      token: () =>
        signedByAttacker({
          x5c: [Buffer.from('not a cert').toString('base64')],
          kid: provider.keys.ES256.kid,
        }),
    },
    {
      attack: 'crit naming an extension we do not understand',
      token: () =>
        Promise.resolve(
          reheader({
            alg: 'RS256',
            kid: provider.keys.RS256.kid,
            crit: ['urn:x:fast'],
            'urn:x:fast': true,
          }),
        ),
      beforeKeys: true,
    },
    {
      attack: 'crit with b64:false (unencoded payload, RFC 7797)',
      token: () =>
        Promise.resolve(
          reheader({ alg: 'RS256', kid: provider.keys.RS256.kid, crit: ['b64'], b64: false }),
        ),
      beforeKeys: true,
    },
    {
      attack: 'kid path traversal',
      token: () =>
        Promise.resolve(
          reheader({ alg: 'RS256', kid: '../../../../../../dev/null', typ: 'at+jwt' }),
        ),
      beforeKeys: true,
    },
    {
      attack: 'kid SQL-ish',
      token: () =>
        Promise.resolve(reheader({ alg: 'RS256', kid: "x' OR '1'='1' --", typ: 'at+jwt' })),
      beforeKeys: true,
    },
    {
      attack: 'kid empty',
      token: () => Promise.resolve(reheader({ alg: 'RS256', kid: '', typ: 'at+jwt' })),
      beforeKeys: true,
    },
    {
      attack: 'kid of 10,000 characters',
      token: () =>
        Promise.resolve(reheader({ alg: 'RS256', kid: 'k'.repeat(10_000), typ: 'at+jwt' })),
      beforeKeys: true,
    },
    {
      attack: 'kid not a string',
      token: () => Promise.resolve(reheader({ alg: 'RS256', kid: { $ne: null }, typ: 'at+jwt' })),
      beforeKeys: true,
    },
    {
      attack: 'cnf.jkt (DPoP-bound, RFC 9449) signed by the provider, no proof',
      token: () =>
        signedByProvider({ cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } }),
      description: /sender-constrained/,
    },
    {
      attack: 'cnf.x5t#S256 (mTLS-bound, RFC 8705) signed by the provider, no certificate',
      token: () =>
        signedByProvider({ cnf: { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } }),
      description: /bound to a client certificate and none was presented/,
    },
    {
      // Parsers drop a header value's edge whitespace: `admin ` would reach the upstream's
      // x-auth-request-user as `admin`.
      attack: 'sub with a trailing space, signed by the provider (admin␠ read as admin)',
      token: () => signedByProvider({ sub: 'admin ' }),
    },
    {
      attack: 'sub with a leading space, signed by the provider',
      token: () => signedByProvider({ sub: ' admin' }),
    },
    {
      attack: 'sub with CR LF and a header line, signed by the provider',
      token: () => signedByProvider({ sub: 'eve\r\nx-auth-request-user: admin' }),
    },
    {
      attack: 'a genuine token of another API (aud billing), replayed at this one',
      token: () => signedByProvider({ aud: 'https://billing.example.com/' }),
    },
    {
      attack: 'a DPoP-bound JWT issued by the provider itself, replayed as Bearer',
      token: async () => {
        const issued = await clientCredentials(provider, attackerKey);
        assert.equal(issued.tokenType, 'DPoP');
        const cnf = decodeJwt(issued.token)['cnf'] as { jkt?: string } | undefined;
        assert.equal(cnf?.jkt, await calculateJwkThumbprint(attackerKey.jwk));
        return issued.token;
      },
      description: /sender-constrained/,
    },
    {
      attack: 'a DPoP-bound opaque token (introspection says cnf.jkt), replayed as Bearer',
      token: async () => {
        const issued = await clientCredentials(opaqueProvider, attackerKey);
        assert.equal(issued.tokenType, 'DPoP');
        assert.equal(issued.token.split('.').length, 1, 'opaque');
        return issued.token;
      },
      origin: ordersOrigin,
      description: /sender-constrained/,
    },
  );

  it('control: the genuine token is allowed (every row below differs from it by the attack)', async () => {
    const outcome = await call(real);
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    const opaque = (await clientCredentials(opaqueProvider)).token;
    assert.equal((await call(opaque, ordersOrigin)).kind, 'allow');
  });

  for (const row of rows) {
    const condemned = row.beforeKeys === true ? ', before any JWKS request' : '';
    it(`${row.attack}: 401 invalid_token, no redirect${condemned}`, async () => {
      const token = await row.token();
      const jwksBefore = provider.counters().jwks;
      const outcome = await call(token, row.origin);
      assert.equal(statusOf(outcome), 401, JSON.stringify(outcome));
      const challenge = header(outcome, 'www-authenticate') ?? '';
      assert.match(
        challenge,
        /^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+"$/,
      );
      assert.match(
        challenge,
        row.description ?? /error_description="the access token is not valid"/,
      );
      assert.equal(header(outcome, 'location'), undefined, 'never a redirect');
      if (row.beforeKeys === true) {
        assert.equal(provider.counters().jwks - jwksBefore, 0, 'a JWKS fetch');
      }
    });
  }

  it('no key was ever fetched from where a token said (jku, x5u, embedded jwk)', () => {
    assert.equal(attacker.hits(), 0);
  });

  it('a refused bound token leaves one warn line with its binding and request id, never the token', async () => {
    const token = await signedByProvider({
      cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
    });
    const before = log.matching(/sender-constrained/).length;
    assert.equal(statusOf(await call(token)), 401);
    const lines = log.matching(/sender-constrained/).slice(before);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!['binding'], 'dpop');
    assert.equal(lines[0]!['app'], 'api');
    assert.equal(typeof lines[0]!['requestId'], 'string');
    assert.ok(!log.text().includes(token.split('.')[2]!), 'the token is never logged');
  });

  it('unknown kids: one JWKS refresh per cooldown, not one per token (400 tokens, 2 waves)', async () => {
    // Settle the key set first: the rows above may have used the one refetch the cooldown allows.
    const jwksBefore = provider.counters().jwks;
    for (let wave = 0; wave < 2; wave++) {
      const tokens = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          signedByAttacker({ kid: `rotated-${wave}-${i}-${randomUUID()}` }),
        ),
      );
      const outcomes = await Promise.all(tokens.map((token) => call(token)));
      for (const outcome of outcomes) assert.equal(statusOf(outcome), 401);
    }
    const fetches = provider.counters().jwks - jwksBefore;
    assert.ok(fetches <= 1, `JWKS fetched ${fetches} times for 400 unknown kids`);
    assert.equal(attacker.hits(), 0);
    // The provider still works for genuine tokens after the storm.
    assert.equal((await call((await clientCredentials(provider)).token)).kind, 'allow');
  });

  it('a digest of the bound token never enters the cache: the next try is refused again', async () => {
    const token = await signedByProvider({
      cnf: { jkt: createHash('sha256').update('k').digest('base64url') },
    });
    assert.equal(statusOf(await call(token)), 401);
    assert.equal(statusOf(await call(token)), 401);
  });
});
