import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sanitiseIdentifier, scopesOf } from '../../src/authz/bearer-claims.ts';
import {
  b64TokenProblem,
  inspectToken,
  maxBearerTokenBytes,
  takeBearerCredential,
} from '../../src/authz/bearer-header.ts';
import { compileScopeRequirements } from '../../src/authz/bearer-scopes.ts';
import { pathOf } from '../support/request-paths.ts';
import { FailureThrottle } from '../../src/authz/bearer-throttle.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { ExpiringLru } from '../../src/expiring-lru.ts';
import { loadConfig } from '../../src/config/load.ts';

describe('bearer credential intake', () => {
  const rows: [string, string | undefined, string][] = [
    ['no header', undefined, 'none'],
    ['another scheme', 'Basic dXNlcjpwYXNz', 'none'],
    ['lower-case scheme', 'bearer abc.def.ghi', 'token'],
    ['empty token', 'Bearer ', 'malformed'],
    ['characters outside b64token', 'Bearer a b', 'malformed'],
    ['a quote in the token', 'Bearer abc"', 'malformed'],
    ['exactly 16 KiB', `Bearer ${'a'.repeat(maxBearerTokenBytes)}`, 'token'],
    ['over 16 KiB', `Bearer ${'a'.repeat(maxBearerTokenBytes + 1)}`, 'malformed'],
  ];
  for (const [name, header, kind] of rows) {
    it(`${name} → ${kind}`, () => {
      // As the bearer step reads it: the header first, then the token's characters.
      const credential = takeBearerCredential(header);
      const problem = credential.kind === 'token' ? b64TokenProblem(credential.token) : undefined;
      assert.equal(problem === undefined ? credential.kind : 'malformed', kind);
      if (credential.kind === 'malformed') assert.ok(!credential.reason.includes('aaaa'));
      if (problem !== undefined) assert.ok(!problem.includes('a b') && !problem.includes('"'));
    });
  }

  it('classifies JWS, JWE and opaque tokens', () => {
    const header = (h: object) => Buffer.from(JSON.stringify(h)).toString('base64url');
    const jws = `${header({ alg: 'ES256', kid: 'a.b_c-1' })}.e30.sig`;
    assert.equal(inspectToken(jws, { requireJwtType: false }).kind, 'jwt');
    assert.equal(inspectToken('opaque-value', { requireJwtType: false }).kind, 'opaque');
    assert.equal(inspectToken('a.b', { requireJwtType: false }).kind, 'opaque');
    assert.equal(inspectToken('a.b.c.d.e', { requireJwtType: false }).kind, 'refused');
    const typed = `${header({ alg: 'RS256', typ: 'application/at+JWT' })}.e30.sig`;
    assert.equal(inspectToken(typed, { requireJwtType: true }).kind, 'jwt');
    const huge = `${header({ alg: 'RS256', x: 'y'.repeat(3000) })}.e30.sig`;
    assert.equal(inspectToken(huge, { requireJwtType: false }).kind, 'refused');
    for (const alg of ['none', 'HS256', 'HS384', 'HS512', 'RSA-OAEP', 'ES256K']) {
      const shape = inspectToken(`${header({ alg })}.e30.sig`, { requireJwtType: false });
      assert.equal(shape.kind, 'refused', alg);
    }
  });
});

describe('bearer identifier and scopes', () => {
  const rows: [string, unknown, string | undefined][] = [
    ['plain', 'svc-orders', 'svc-orders'],
    ['unicode letters', 'Zoë', 'Zoë'],
    ['empty', '', undefined],
    ['number', 42, undefined],
    ['NUL', 'a\u0000b', undefined],
    ['DEL', 'a\u007fb', undefined],
    ['C1 control', 'a\u0085b', undefined],
    ['right-to-left override', 'a\u202eb', undefined],
    ['isolate', 'a\u2067b', undefined],
    ['line separator', 'a\u2028b', undefined],
    ['lone high surrogate', 'a\ud83db', undefined],
    ['lone low surrogate', '\udc00ab', undefined],
    ['emoji (a surrogate pair)', 'svc-🦄', 'svc-🦄'],
    ['comma', 'a,b', undefined],
    ['semicolon', 'a;b', undefined],
    ['equals', 'a=b', undefined],
    ['256 characters', 'x'.repeat(256), 'x'.repeat(256)],
    ['257 characters', 'x'.repeat(257), undefined],
  ];
  for (const [name, value, expected] of rows) {
    it(`identifier: ${name}`, () => assert.equal(sanitiseIdentifier(value), expected));
  }

  it('reads scope strings and scp arrays', () => {
    assert.deepEqual([...scopesOf({ scope: 'a  b' })], ['a', 'b']);
    assert.deepEqual([...scopesOf({ scp: ['c', 7, 'd'] })], ['c', 'd']);
    assert.deepEqual([...scopesOf({})], []);
  });

  it('requires app scopes and those of every matching path rule', () => {
    const scopes = compileScopeRequirements(
      ['api:read'],
      [
        { prefix: '/admin/', requiredScopes: ['api:admin'] },
        { prefix: '/orders/', methods: ['POST'], requiredScopes: ['orders:write'] },
        { prefix: '/', methods: ['GET'], requiredScopes: ['api:get'] },
      ],
    );
    const granted = (...s: string[]) => new Set(s);
    const rows: [string, Set<string>, string, string, string | undefined][] = [
      ['app scope missing', granted('api:get'), 'GET', '/x', 'api:read'],
      ['all there', granted('api:read', 'api:get'), 'GET', '/x', undefined],
      ['GET rule covers HEAD', granted('api:read'), 'HEAD', '/x', 'api:get'],
      ['path rule', granted('api:read'), 'DELETE', '/admin/users', 'api:admin'],
      ['dot segments', granted('api:read'), 'DELETE', '/x/../admin/users', 'api:admin'],
      ['percent-encoding', granted('api:read'), 'DELETE', '/%61dmin/users', 'api:admin'],
      ['; parameter', granted('api:read'), 'DELETE', '/admin;v=1/users', 'api:admin'],
      ['method-limited rule', granted('api:read'), 'POST', '/orders/1', 'orders:write'],
      ['other method', granted('api:read'), 'PUT', '/orders/1', undefined],
    ];
    for (const [name, have, method, path, missing] of rows) {
      assert.equal(scopes.missing(have, method, pathOf(path)), missing, name);
    }
  });
});

describe('bearer failure throttle', () => {
  it('refuses an address after maxFailures within the window, others unaffected, then forgives', () => {
    const clock = { now: 1_000_000 };
    const throttle = new FailureThrottle({
      maxFailures: 3,
      windowMs: 60_000,
      now: () => clock.now,
    });
    for (let i = 0; i < 2; i++) throttle.recordFailure('10.0.0.1');
    assert.equal(throttle.retryAfterSeconds('10.0.0.1'), undefined);
    throttle.recordFailure('10.0.0.1');
    assert.equal(throttle.retryAfterSeconds('10.0.0.1'), 60);
    assert.equal(throttle.retryAfterSeconds('10.0.0.2'), undefined);
    clock.now += 45_500;
    assert.equal(throttle.retryAfterSeconds('10.0.0.1'), 15);
    clock.now += 14_500;
    assert.equal(throttle.retryAfterSeconds('10.0.0.1'), undefined);
  });

  it('tracks a bounded number of addresses', () => {
    const throttle = new FailureThrottle({
      maxFailures: 1,
      windowMs: 60_000,
      maxAddresses: 2,
      now: () => 0,
    });
    for (const address of ['a', 'b', 'c']) throttle.recordFailure(address);
    assert.equal(throttle.retryAfterSeconds('a'), undefined, 'the oldest was forgotten');
    assert.equal(throttle.retryAfterSeconds('c'), 60);
  });

  it('rejects nonsensical options, naming them', () => {
    assert.throws(
      () => new FailureThrottle({ maxFailures: 0, windowMs: -1, now: Date.now }),
      /maxFailures.*windowMs/,
    );
  });
});

describe('bearer token cache', () => {
  it('keys by a digest, drops entries at their deadline', () => {
    const clock = { now: 0 };
    const cache = new ExpiringLru<string>({ maxEntries: 10, now: () => clock.now });
    const key = sha256Base64url('secret-token');
    assert.ok(!key.includes('secret'));
    assert.equal(key.length, 43);
    cache.set(key, 'identity', 1_000);
    assert.equal(cache.get(key), 'identity');
    clock.now = 1_000;
    assert.equal(cache.get(key), undefined);
    assert.equal(cache.size, 0);
    cache.set(key, 'late', 500);
    assert.equal(cache.size, 0, 'an already-expired entry is not stored');
  });
});

describe('bearer config', () => {
  const load = (bearer: Record<string, unknown>) =>
    loadConfig(
      {
        format: 'json',
        text: JSON.stringify({
          apps: [
            {
              name: 'api',
              oidc: { issuer: 'https://idp.example.com', clientId: 'api', clientSecret: 's' },
              session: { secrets: ['rFyO3R6uTGMAdszJQBPYeDBIzhQRj1FF/xgXPlEPelYu'] },
              bearer,
            },
          ],
        }),
      },
      {},
    );
  const rows: [string, Record<string, unknown>, string | undefined][] = [
    ['enabled without audiences', { enabled: true }, 'apps[0].bearer.audiences'],
    [
      'email as identifier',
      { enabled: true, audiences: ['a'], identifierClaim: 'email' },
      'apps[0].bearer.identifierClaim',
    ],
    [
      'path rule without scopes',
      { enabled: true, audiences: ['a'], paths: [{ prefix: '/x', requiredScopes: [] }] },
      'apps[0].bearer.paths[0].requiredScopes',
    ],
    ['off by default', {}, undefined],
    ['a valid setup', { enabled: true, audiences: ['a'], requiredScopes: ['read'] }, undefined],
  ];
  for (const [name, bearer, path] of rows) {
    it(`${name}: ${path ?? 'accepted'}`, () => {
      const result = load(bearer);
      if (path === undefined) {
        assert.ok(result.ok, JSON.stringify(result.ok ? '' : result.problems));
        assert.equal(result.config.apps[0]!.bearer.enabled, bearer['enabled'] ?? false);
      } else {
        assert.ok(!result.ok);
        assert.ok(
          result.problems.some((p) => p.path === path),
          JSON.stringify(result.problems),
        );
      }
    });
  }
});
