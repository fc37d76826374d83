import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { before, describe, it } from 'node:test';
import {
  SignJWT,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import { BearerAuthenticator } from '../../src/authz/bearer-authenticator.ts';
import { BearerRevocations } from '../../src/authz/bearer-revocations.ts';
import type { AppConfig } from '../../src/config/schema.ts';
import type { ProviderKeyGetter } from '../../src/oidc/provider-keys.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { testApp, testConfig } from '../support/test-server.ts';

const ISSUER = 'https://idp.example.com';
const API = 'https://api.example.com';
const CLIENT_ID = 'gateway';
const T0 = Date.UTC(2030, 0, 1);

function appConfig(bearer: Record<string, unknown> = {}): AppConfig {
  const config = testConfig({
    apps: [
      testApp(
        'api',
        {
          oidc: { issuer: ISSUER, clientId: CLIENT_ID, clientSecret: 's' },
          bearer: { enabled: true, audiences: [API], ...bearer },
        },
        ISSUER,
      ),
    ],
  });
  return config.apps[0]!;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

interface Rig {
  readonly authenticator: BearerAuthenticator;
  readonly revocations: BearerRevocations;
  /** Key lookups reaching the JWKS (the getter jose would call). */
  readonly keyLookups: () => number;
  readonly clock: { now: number };
}

let rsKey: CryptoKey;
let rsPublicPem: string;
let otherKey: CryptoKey;
let jwks: { keys: JWK[] };

async function sign(
  payload: JWTPayload,
  header: Record<string, unknown> = {},
  key: CryptoKey = rsKey,
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', ...header })
    .sign(key);
}

function claims(now: number, overrides: Record<string, unknown> = {}): JWTPayload {
  const seconds = Math.floor(now / 1000);
  const base: Record<string, unknown> = {
    iss: ISSUER,
    aud: API,
    sub: 'svc-orders',
    client_id: 'svc-orders',
    scope: 'api:read api:write',
    iat: seconds - 10,
    exp: seconds + 300,
    jti: randomUUID(),
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base;
}

function rig(bearer: Record<string, unknown> = {}): Rig {
  const clock = { now: T0 };
  const now = () => clock.now;
  const local = createLocalJWKSet(jwks);
  let lookups = 0;
  const getKey: ProviderKeyGetter = (header, token) => {
    lookups += 1;
    return local(header, token);
  };
  const keyspaces = createAppKeyspaces(createMemoryBackend({ now }), {
    app: 'api',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now,
  });
  const revocations = new BearerRevocations(keyspaces.revokedTokens);
  const config = appConfig(bearer);
  const metrics = {
    verification: () => undefined,
    cache: () => undefined,
    throttled: () => undefined,
  };
  const authenticator = new BearerAuthenticator(config, { getKey, revocations, metrics, now });
  return { authenticator, revocations, keyLookups: () => lookups, clock };
}

before(async () => {
  const rs = await generateKeyPair('RS256', { extractable: true });
  rsKey = rs.privateKey;
  rsPublicPem = await exportSPKI(rs.publicKey);
  otherKey = (await generateKeyPair('RS256')).privateKey;
  jwks = { keys: [{ ...(await exportJWK(rs.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
});

interface Case {
  readonly name: string;
  /** Builds the token that breaks exactly one rule. */
  readonly token: (now: number) => Promise<string>;
  readonly bearer?: Record<string, unknown>;
  readonly reason: RegExp;
  /** True when the rule is enforced before any key lookup. */
  readonly beforeKeys?: boolean;
}

const hs256WithPublicKey = async (now: number): Promise<string> => {
  // The classic confusion attack: the RSA public key (which anyone can fetch) as an HMAC secret.
  return new SignJWT(claims(now))
    .setProtectedHeader({ alg: 'HS256', kid: 'k1', typ: 'at+jwt' })
    .sign(new TextEncoder().encode(rsPublicPem));
};

const cases: readonly Case[] = [
  {
    name: 'alg none',
    token: (now) => Promise.resolve(`${b64({ alg: 'none', kid: 'k1' })}.${b64(claims(now))}.AAAA`),
    reason: /algorithm not allowed/,
    beforeKeys: true,
  },
  {
    name: 'alg none without a signature',
    token: (now) => Promise.resolve(`${b64({ alg: 'none' })}.${b64(claims(now))}.`),
    reason: /unsigned token/,
    beforeKeys: true,
  },
  {
    name: 'HS256 with the public key as secret',
    token: hs256WithPublicKey,
    reason: /algorithm not allowed/,
    beforeKeys: true,
  },
  {
    name: 'kid longer than 256',
    token: (now) => sign(claims(now), { kid: 'k'.repeat(257) }),
    reason: /invalid kid/,
    beforeKeys: true,
  },
  {
    name: 'kid outside [A-Za-z0-9._-]',
    token: (now) => sign(claims(now), { kid: '../../etc/passwd' }),
    reason: /invalid kid/,
    beforeKeys: true,
  },
  {
    name: 'critical header',
    token: (now) => sign(claims(now), { crit: ['b64'], b64: true }),
    reason: /critical/,
    beforeKeys: true,
  },
  {
    name: 'encrypted token (JWE)',
    token: () => Promise.resolve('eyJhbGciOiJkaXIifQ..AAAA.BBBB.CCCC'),
    reason: /encrypted/,
    beforeKeys: true,
  },
  {
    name: 'typ missing when at+jwt is required',
    token: (now) => sign(claims(now), { typ: 'JWT' }),
    bearer: { requireJwtType: true },
    reason: /typ must be at\+jwt/,
    beforeKeys: true,
  },
  {
    name: 'opaque token without introspection',
    token: () => Promise.resolve('2YotnFZFEjr1zCsicMWpAA'),
    reason: /opaque tokens are not accepted/,
    beforeKeys: true,
  },
  {
    name: 'signature by another key under a known kid',
    token: (now) => sign(claims(now), {}, otherKey),
    reason: /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
  },
  {
    name: 'unknown kid',
    token: (now) => sign(claims(now), { kid: 'k9' }, otherKey),
    reason: /ERR_JWKS_NO_MATCHING_KEY/,
  },
  {
    name: 'another issuer',
    token: (now) => sign(claims(now, { iss: 'https://evil.example.com' })),
    reason: /ERR_JWT_CLAIM_VALIDATION_FAILED/,
  },
  {
    name: 'wrong audience',
    token: (now) => sign(claims(now, { aud: 'https://other-api.example.com' })),
    reason: /ERR_JWT_CLAIM_VALIDATION_FAILED/,
  },
  {
    name: 'expired beyond the skew',
    token: (now) => sign(claims(now, { exp: Math.floor(now / 1000) - 31 })),
    reason: /ERR_JWT_EXPIRED/,
  },
  {
    name: 'not yet valid beyond the skew',
    token: (now) => sign(claims(now, { nbf: Math.floor(now / 1000) + 60 })),
    reason: /ERR_JWT_CLAIM_VALIDATION_FAILED/,
  },
  {
    name: 'iat older than maxTokenAge',
    token: (now) =>
      sign(
        claims(now, { iat: Math.floor(now / 1000) - 3600 - 31, exp: Math.floor(now / 1000) + 60 }),
      ),
    bearer: { maxTokenAge: '1h' },
    reason: /ERR_JWT_EXPIRED/,
  },
  {
    name: 'iat missing',
    token: (now) => sign(claims(now, { iat: undefined })),
    reason: /ERR_JWT_CLAIM_VALIDATION_FAILED/,
  },
  {
    name: 'exp missing',
    token: (now) => sign(claims(now, { exp: undefined })),
    reason: /ERR_JWT_CLAIM_VALIDATION_FAILED/,
  },
  {
    name: 'ID token: nonce present',
    token: (now) => sign(claims(now, { nonce: 'n-0S6_WzA2Mj' })),
    reason: /ID tokens are not accepted/,
  },
  {
    name: 'ID token: addressed to the app client as well',
    token: (now) => sign(claims(now, { aud: [API, CLIENT_ID], azp: CLIENT_ID })),
    reason: /ID tokens are not accepted/,
  },
  {
    name: 'several audiences without azp',
    token: (now) => sign(claims(now, { aud: [API, 'https://billing.example.com'] })),
    reason: /azp required/,
  },
  {
    name: 'several audiences with a foreign azp',
    token: (now) =>
      sign(claims(now, { aud: [API, 'https://billing.example.com'], azp: 'stranger' })),
    reason: /azp is not an allowed client/,
  },
  {
    name: 'client not in allowedClients',
    token: (now) => sign(claims(now, { client_id: 'svc-unknown' })),
    bearer: { allowedClients: ['svc-orders'] },
    reason: /client not allowed/,
  },
  {
    name: 'identifier missing',
    token: (now) => sign(claims(now, { sub: undefined })),
    reason: /identifier missing or unsafe/,
  },
  {
    name: 'identifier with a control character',
    token: (now) => sign(claims(now, { sub: 'svc\r\nx-admin: 1' })),
    reason: /identifier missing or unsafe/,
  },
  {
    name: 'identifier with a bidi override',
    token: (now) => sign(claims(now, { sub: 'svc\u202Egpj.exe' })),
    reason: /identifier missing or unsafe/,
  },
  {
    name: 'identifier with a list delimiter',
    token: (now) => sign(claims(now, { sub: 'svc-a,svc-admin' })),
    reason: /identifier missing or unsafe/,
  },
  {
    name: 'identifier longer than 256',
    token: (now) => sign(claims(now, { sub: 's'.repeat(257) })),
    reason: /identifier missing or unsafe/,
  },
  {
    name: 'DPoP-bound token (cnf.jkt) presented as a bearer token',
    token: (now) =>
      sign(claims(now, { cnf: { jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' } })),
    reason: /sender-constrained/,
  },
  {
    name: 'mTLS-bound token (cnf.x5t#S256) for an app with certificate-bound tokens off',
    token: (now) =>
      sign(claims(now, { cnf: { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } })),
    bearer: { mtls: { enabled: false } },
    reason: /sender-constrained/,
  },
  {
    name: 'mTLS-bound token whose thumbprint is not a SHA-256 one',
    token: (now) => sign(claims(now, { cnf: { 'x5t#S256': 'short' } })),
    reason: /sender-constrained/,
  },
  {
    name: 'token bound to both a DPoP key and a certificate, both bindings on',
    token: (now) =>
      sign(
        claims(now, {
          cnf: {
            jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I',
            'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2',
          },
        }),
      ),
    bearer: { dpop: { enabled: true } },
    reason: /sender-constrained/,
  },
  {
    name: 'DPoP-bound token whose jkt is not a string, DPoP on',
    token: (now) => sign(claims(now, { cnf: { jkt: 42 } })),
    bearer: { dpop: { enabled: true } },
    reason: /sender-constrained/,
  },
  {
    name: 'cnf of an unknown kind, or empty, or null',
    token: (now) => sign(claims(now, { cnf: null })),
    reason: /sender-constrained/,
  },
  {
    name: 'identifier claim of another type',
    token: (now) => sign(claims(now, { client_id: 42 })),
    bearer: { identifierClaim: 'client_id' },
    reason: /identifier missing or unsafe/,
  },
];

describe('bearer authenticator', () => {
  it('accepts a well-formed access token and reads identity and scopes', async () => {
    const { authenticator, keyLookups, clock } = rig();
    const outcome = await authenticator.authenticate(await sign(claims(clock.now)));
    assert.equal(outcome.kind, 'valid', JSON.stringify(outcome));
    assert.ok(outcome.kind === 'valid');
    assert.equal(outcome.identity.identifier, 'svc-orders');
    assert.deepEqual([...outcome.identity.scopes], ['api:read', 'api:write']);
    assert.equal(keyLookups(), 1);
  });

  it('accepts a token expired within the clock skew, and the identifier claim configured', async () => {
    const { authenticator, clock } = rig({ identifierClaim: 'client_id', requireJwtType: true });
    const now = Math.floor(clock.now / 1000);
    const token = await sign(claims(clock.now, { exp: now - 20, client_id: 'svc-billing' }));
    const outcome = await authenticator.authenticate(token);
    assert.equal(outcome.kind === 'valid' && outcome.identity.identifier, 'svc-billing');
  });

  for (const c of cases) {
    it(`refuses: ${c.name}`, async () => {
      const { authenticator, keyLookups, clock } = rig(c.bearer);
      const outcome = await authenticator.authenticate(await c.token(clock.now));
      assert.equal(outcome.kind, 'invalid', JSON.stringify(outcome));
      assert.match(outcome.kind === 'invalid' ? outcome.reason : '', c.reason);
      if (c.beforeKeys === true) assert.equal(keyLookups(), 0, 'refused before any key lookup');
    });
  }

  it('carries a verified binding as the confirmation the step checks on every request', async () => {
    const jkt = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';
    const x5t = 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2';
    const { authenticator, clock } = rig({ dpop: { enabled: true } });
    const dpop = await authenticator.authenticate(await sign(claims(clock.now, { cnf: { jkt } })));
    assert.ok(dpop.kind === 'valid', JSON.stringify(dpop));
    assert.deepEqual(dpop.identity.confirmation, { kind: 'dpop', jkt });
    const mtls = await authenticator.authenticate(
      await sign(claims(clock.now, { cnf: { 'x5t#S256': x5t } })),
    );
    assert.ok(mtls.kind === 'valid', JSON.stringify(mtls));
    assert.deepEqual(mtls.identity.confirmation, { kind: 'mtls', x5t });
  });

  it('names the binding of a refused cnf token, for the log line', async () => {
    const { authenticator, clock } = rig();
    const bindings = [];
    for (const cnf of [{ jkt: 'x' }, { 'x5t#S256': 'y' }, { jwk: { kty: 'EC' } }, {}]) {
      const outcome = await authenticator.authenticate(await sign(claims(clock.now, { cnf })));
      bindings.push(outcome.kind === 'invalid' ? outcome.binding : outcome.kind);
    }
    assert.deepEqual(bindings, ['dpop', 'mtls', 'other', 'other']);
    const plain = await authenticator.authenticate(await sign(claims(clock.now)));
    assert.equal(plain.kind, 'valid');
  });

  it('runs the first check only on a token not verified before', async () => {
    const { authenticator, keyLookups, clock } = rig();
    const token = await sign(claims(clock.now));
    let checks = 0;
    const firstCheck = (value: string) => {
      checks += 1;
      return value.includes('"') ? 'malformed token' : undefined;
    };
    assert.equal((await authenticator.authenticate(token, firstCheck)).kind, 'valid');
    assert.equal((await authenticator.authenticate(token, firstCheck)).kind, 'valid');
    assert.equal(checks, 1, 'the cached token was checked when it was verified');
    const refused = await authenticator.authenticate(`${token}"`, firstCheck);
    assert.equal(refused.kind === 'invalid' && refused.reason, 'malformed token');
    assert.equal(keyLookups(), 1, 'refused before any key lookup');
  });

  it('refuses a revoked jti, also when the token is already cached', async () => {
    const { authenticator, revocations, keyLookups, clock } = rig();
    const payload = claims(clock.now);
    const token = await sign(payload);
    assert.equal((await authenticator.authenticate(token)).kind, 'valid');
    await revocations.revoke(payload.jti!, payload.exp! * 1000);
    const outcome = await authenticator.authenticate(token);
    assert.equal(outcome.kind === 'invalid' && outcome.reason, 'token revoked');
    assert.equal(keyLookups(), 1, 'the revocation was found without verifying again');
  });

  it('verifies a hot token once, and again once its cache entry is past exp', async () => {
    const { authenticator, keyLookups, clock } = rig();
    const token = await sign(claims(clock.now, { exp: Math.floor(clock.now / 1000) + 60 }));
    for (let i = 0; i < 100; i++) {
      assert.equal((await authenticator.authenticate(token)).kind, 'valid');
    }
    assert.equal(keyLookups(), 1, 'one verification for 100 uses');
    clock.now += 61_000;
    // Past exp but inside the skew: verified again (not served from the cache), still valid.
    assert.equal((await authenticator.authenticate(token)).kind, 'valid');
    assert.equal(keyLookups(), 2);
    clock.now += 30_000;
    const late = await authenticator.authenticate(token);
    assert.equal(late.kind === 'invalid' && late.reason, 'ERR_JWT_EXPIRED');
  });

  it('shares one verification between concurrent requests with the same new token', async () => {
    const { authenticator, keyLookups, clock } = rig();
    const token = await sign(claims(clock.now));
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, async () => authenticator.authenticate(token)),
    );
    assert.ok(outcomes.every((o) => o.kind === 'valid'));
    assert.equal(keyLookups(), 1);
  });

  it('keeps at most cacheMax tokens, dropping the least recently used', async () => {
    const { authenticator, keyLookups, clock } = rig({ cacheMax: 2 });
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => sign(claims(clock.now))));
    for (const token of [a!, b!, a!, c!]) await authenticator.authenticate(token);
    assert.equal(keyLookups(), 3);
    await authenticator.authenticate(a!); // kept: used after b
    assert.equal(keyLookups(), 3);
    await authenticator.authenticate(b!); // dropped for c
    assert.equal(keyLookups(), 4);
  });

  it('reports the verification cost of a token cold and hot', async () => {
    const { authenticator, clock } = rig();
    const tokens = await Promise.all(Array.from({ length: 200 }, () => sign(claims(clock.now))));
    const median = (samples: number[]) => samples.sort((x, y) => x - y)[samples.length >> 1]!;
    const cold: number[] = [];
    const hot: number[] = [];
    for (const token of tokens) {
      let started = performance.now();
      assert.equal((await authenticator.authenticate(token)).kind, 'valid');
      cold.push(performance.now() - started);
      started = performance.now();
      assert.equal((await authenticator.authenticate(token)).kind, 'valid');
      hot.push(performance.now() - started);
    }
    console.log(
      `# bearer RS256 verification, median of ${tokens.length}: cold ${(median(cold) * 1000).toFixed(1)} µs, hot ${(median(hot) * 1000).toFixed(1)} µs`,
    );
  });
});
