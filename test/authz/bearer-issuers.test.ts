import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BearerAuthenticator } from '../../src/authz/bearer-authenticator.ts';
import { BearerRevocations } from '../../src/authz/bearer-revocations.ts';
import type { AppConfig } from '../../src/config/schema.ts';
import { createIdpFetch } from '../../src/oidc/idp-fetch.ts';
import { createIssuerKeys } from '../../src/oidc/issuer-keys.ts';
import { JWKS_CACHE } from '../../src/oidc/provider.ts';
import { runUnguarded } from '../../src/oidc/idp-call-guard.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import type { TestProvider } from '../../dev/test-provider.ts';
import { testApp, testConfig } from '../support/test-server.ts';
import {
  basicClient,
  readyClient,
  startProvider,
  type StandaloneClient,
} from '../oidc/oidc-fixtures.ts';

const API = 'https://api.example.com';
const PARTNER_API = 'https://partner-api.example.com';

function appConfig(primary: string, issuers: readonly Record<string, unknown>[]): AppConfig {
  return testConfig({
    apps: [testApp('api', { bearer: { enabled: true, audiences: [API], issuers } }, primary)],
  }).apps[0]!;
}

describe('bearer.issuers', () => {
  let a: TestProvider;
  let b: TestProvider;
  let client: StandaloneClient;
  let authenticator: BearerAuthenticator;
  let built = 0;

  const fetches = () => {
    const ca = a.counters();
    const cb = b.counters();
    return { a: ca.discovery + ca.jwks, b: cb.discovery + cb.jwks };
  };

  before(async () => {
    a = await startProvider({ clients: [basicClient()] });
    b = await startProvider({ clients: [basicClient()] });
    client = await readyClient(a);
    const app = appConfig(a.issuer, [
      { issuer: b.issuer, audiences: [PARTNER_API], identifierClaim: 'client_id' },
    ]);
    const now = () => Date.now();
    const keyspaces = createAppKeyspaces(createMemoryBackend({ now }), {
      app: 'api',
      sessionMaxAge: 86_400_000,
      loginTimeout: 600_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
      now,
    });
    const fetch = createIdpFetch({ timeoutMs: 2_000, tlsInsecureSkipVerify: false });
    authenticator = new BearerAuthenticator(app, {
      getKey: client.getKey,
      issuerKeys: (issuer, jwksUri) =>
        createIssuerKeys(issuer, jwksUri, {
          fetch,
          guard: () => {
            built += 1;
            return runUnguarded;
          },
          timeoutMs: 2_000,
          ...JWKS_CACHE,
          retryIntervalMs: JWKS_CACHE.forcedRefetchIntervalMs,
          now,
        }),
      revocations: new BearerRevocations(keyspaces.revokedTokens),
      metrics: {
        verification: () => undefined,
        cache: () => undefined,
        throttled: () => undefined,
      },
      now,
    });
  });
  after(async () => {
    client.close();
    await a.close();
    await b.close();
  });

  const token = (provider: TestProvider, claims: Record<string, unknown>, kid?: string) => {
    const now = Math.floor(Date.now() / 1000);
    return provider.signJwt(
      { sub: 'svc', client_id: 'ci-runner', exp: now + 300, scope: 'read', ...claims },
      { typ: 'at+jwt', ...(kid === undefined ? {} : { kid }) },
    );
  };

  it('fetches nothing for a further issuer before a token names it', () => {
    assert.equal(built, 0);
    assert.equal(fetches().b, 0);
  });

  it("routes each token to its issuer and checks it with that issuer's audiences and claims", async () => {
    const fromA = await authenticator.authenticate(await token(a, { aud: API }));
    assert.equal(fromA.kind, 'valid');
    assert.equal(fromA.kind === 'valid' && fromA.identity.identifier, 'svc');
    const fromB = await authenticator.authenticate(await token(b, { aud: PARTNER_API }));
    assert.equal(fromB.kind, 'valid');
    assert.equal(fromB.kind === 'valid' && fromB.identity.identifier, 'ci-runner');
    assert.equal(built, 1);
    // Each issuer's audiences are its own.
    const crossed = await authenticator.authenticate(await token(b, { aud: API }));
    assert.equal(crossed.kind, 'invalid');
  });

  it("refuses a token naming issuer A but signed with B's key", async () => {
    const forged = await b.signJwt(
      { iss: a.issuer, aud: API, sub: 'svc', exp: Math.floor(Date.now() / 1000) + 300 },
      { typ: 'at+jwt' },
    );
    const before = fetches();
    const outcome = await authenticator.authenticate(forged);
    assert.equal(outcome.kind, 'invalid');
    assert.equal(fetches().b, before.b, "B's keys are never consulted for A's tokens");
    // And B's own kid under A's key set: same answer.
    const underBKid = await a.signJwt(
      { iss: b.issuer, aud: PARTNER_API, sub: 'svc', exp: Math.floor(Date.now() / 1000) + 300 },
      { typ: 'at+jwt', kid: b.keys.RS256.kid },
    );
    assert.equal((await authenticator.authenticate(underBKid)).kind, 'invalid');
  });

  it('refuses an iss that is not a string, without any fetch', async () => {
    const before = fetches();
    for (const iss of [undefined, null, 42, true, [a.issuer], { iss: a.issuer }]) {
      const outcome = await authenticator.authenticate(await token(a, { aud: API, iss }));
      assert.deepEqual(outcome, { kind: 'invalid', reason: 'issuer missing' }, JSON.stringify(iss));
    }
    assert.deepEqual(fetches(), before);
  });

  it('refuses a flood of unknown, huge and odd issuers without a single fetch', async () => {
    const before = fetches();
    const builtBefore = built;
    const odd = [
      '',
      `${a.issuer}/`,
      `${b.issuer}\r\nx-injected: 1`,
      'https://idp.exämple.com',
      'x'.repeat(100_000),
      `${a.issuer}${'/'.repeat(5_000)}`,
    ];
    const names = [...odd, ...Array.from({ length: 300 }, (_, i) => `https://idp-${i}.example`)];
    const outcomes = await Promise.all(
      names.map(async (iss) => authenticator.authenticate(await token(a, { aud: API, iss }))),
    );
    for (const outcome of outcomes) {
      assert.deepEqual(outcome, { kind: 'invalid', reason: 'unknown issuer' });
    }
    assert.deepEqual(fetches(), before);
    assert.equal(built, builtBefore);
  });
});

describe('bearer.issuers config', () => {
  const primary = 'https://idp.example.com';
  it('refuses a repeated issuer, the app issuer again, and keys from plain http', () => {
    assert.throws(
      () =>
        appConfig(primary, [
          { issuer: 'https://ci.example.com', audiences: ['a'] },
          { issuer: 'https://ci.example.com', audiences: ['b'] },
        ]),
      /bearer\.issuers.*twice/,
    );
    assert.throws(
      () => appConfig(primary, [{ issuer: primary, audiences: ['a'] }]),
      /bearer\.issuers\[0\]\.issuer/,
    );
    assert.throws(
      () =>
        appConfig(primary, [
          {
            issuer: 'https://ci.example.com',
            jwksUri: 'http://ci.example.com/keys',
            audiences: ['a'],
          },
        ]),
      /jwksUri/,
    );
    assert.throws(
      () => appConfig(primary, [{ issuer: 'https://ci.example.com', audiences: [] }]),
      /audiences/,
    );
    const app = appConfig(primary, [
      { issuer: 'https://kubernetes.default.svc', audiences: ['api'] },
    ]);
    assert.deepEqual(app.bearer.issuers, [
      {
        issuer: 'https://kubernetes.default.svc',
        audiences: ['api'],
        identifierClaim: 'sub',
        allowedClients: [],
      },
    ]);
  });
});

describe('bearer.issuers: keys of a further issuer', () => {
  let a: TestProvider;
  let b: TestProvider;
  before(async () => {
    a = await startProvider({ clients: [basicClient()] });
    b = await startProvider({ clients: [basicClient()] });
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  function authenticatorFor(entry: Record<string, unknown>, clock: { now: number }) {
    const now = () => clock.now;
    const app = appConfig(a.issuer, [{ issuer: b.issuer, audiences: [PARTNER_API], ...entry }]);
    const keyspaces = createAppKeyspaces(createMemoryBackend({ now }), {
      app: 'api',
      sessionMaxAge: 86_400_000,
      loginTimeout: 600_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
      now,
    });
    const fetch = createIdpFetch({ timeoutMs: 2_000, tlsInsecureSkipVerify: false });
    return new BearerAuthenticator(app, {
      getKey: () => Promise.reject(new Error('the app issuer is not used here')),
      issuerKeys: (issuer, jwksUri) =>
        createIssuerKeys(issuer, jwksUri, {
          fetch,
          guard: () => runUnguarded,
          timeoutMs: 2_000,
          ...JWKS_CACHE,
          retryIntervalMs: 10_000,
          now,
        }),
      revocations: new BearerRevocations(keyspaces.revokedTokens),
      metrics: {
        verification: () => undefined,
        cache: () => undefined,
        throttled: () => undefined,
      },
      now,
    });
  }

  const tokenOfB = (jti: string) =>
    b.signJwt(
      { aud: PARTNER_API, sub: 'svc', jti, exp: Math.floor(Date.now() / 1000) + 300 },
      { typ: 'at+jwt' },
    );

  it('an issuer that is down costs one discovery per retry interval, however many tokens', async () => {
    const clock = { now: Date.now() };
    const authenticator = authenticatorFor({}, clock);
    b.resetCounters();
    b.injectFault({ target: 'discovery', status: 503 });
    try {
      const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => tokenOfB(`d-${i}`)));
      const outcomes = await Promise.all(tokens.map(async (t) => authenticator.authenticate(t)));
      for (const outcome of outcomes) assert.equal(outcome.kind, 'unavailable');
      const again = await authenticator.authenticate(await tokenOfB('d-again'));
      assert.equal(again.kind, 'unavailable');
      assert.equal(b.counters().discovery, 1);
      b.clearFaults();
      clock.now += 10_001;
      const back = await authenticator.authenticate(await tokenOfB('d-back'));
      assert.equal(back.kind, 'valid');
      assert.equal(b.counters().discovery, 2);
    } finally {
      b.clearFaults();
    }
  });

  it('a configured jwksUri is used without discovery', async () => {
    const authenticator = authenticatorFor({ jwksUri: `${b.issuer}/jwks` }, { now: Date.now() });
    b.resetCounters();
    const outcome = await authenticator.authenticate(await tokenOfB('j-1'));
    assert.equal(outcome.kind, 'valid');
    assert.equal(b.counters().discovery, 0);
    assert.equal(b.counters().jwks, 1);
  });

  it("follows the further issuer's key rotation", async () => {
    const authenticator = authenticatorFor({}, { now: Date.now() });
    assert.equal((await authenticator.authenticate(await tokenOfB('r-1'))).kind, 'valid');
    await b.rotateSigningKey();
    assert.equal((await authenticator.authenticate(await tokenOfB('r-2'))).kind, 'valid');
  });
});
