import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider, TestUser } from '../../dev/test-provider.ts';
import { IdpError, IdpUnavailableError, TokenInvalidError } from '../../src/errors.ts';
import {
  USERINFO_MAX_BYTES,
  accessTokenClaims,
  mergeClaims,
} from '../../src/oidc/claim-sources.ts';
import type { IdpCallKind } from '../../src/oidc/idp-call-guard.ts';
import {
  basicClient,
  loginAndExchange,
  readyClient,
  type StandaloneClient,
  startProvider,
} from './oidc-fixtures.ts';

const RESOURCE = 'https://api.example.com';

const ALICE: TestUser = {
  sub: 'alice',
  email: 'alice@example.com',
  emailVerified: true,
  userinfoClaims: { department: 'finance', 'https://example.com/tier': 'gold' },
  accessTokenClaims: { realm_access: { roles: ['admin', 'user'] } },
};

describe('mergeClaims', () => {
  const idToken = { sub: 'alice', iss: 'https://idp', aud: 'web', acr: 'loa2', name: 'Alice' };

  it('applies sources in order, a later one replacing whole values', () => {
    const merged = mergeClaims(idToken, [
      { source: 'id_token', claims: idToken },
      { source: 'userinfo', claims: { name: 'Alice U', groups: ['a'] } },
      { source: 'access_token', claims: { groups: ['b'] } },
    ]);
    assert.equal(merged['name'], 'Alice U');
    assert.deepEqual(merged['groups'], ['b']);
  });

  it('reads the ID token first when the list does not name it', () => {
    const merged = mergeClaims(idToken, [{ source: 'userinfo', claims: { name: 'Alice U' } }]);
    assert.equal(merged['name'], 'Alice U');
  });

  it('lets an ID token listed last win over userinfo for ordinary claims', () => {
    const merged = mergeClaims(idToken, [
      { source: 'userinfo', claims: { name: 'Alice U' } },
      { source: 'id_token', claims: idToken },
    ]);
    assert.equal(merged['name'], 'Alice');
  });

  it('never takes sub, acr, amr, auth_time or sid from another source, nor invents them', () => {
    const merged = mergeClaims(idToken, [
      {
        source: 'access_token',
        claims: { sub: 'mallory', acr: 'loa3', amr: ['hwk'], auth_time: 1, sid: 'x', aud: 'api' },
      },
    ]);
    assert.equal(merged['sub'], 'alice');
    assert.equal(merged['acr'], 'loa2');
    assert.equal(Object.hasOwn(merged, 'amr'), false);
    assert.equal(Object.hasOwn(merged, 'auth_time'), false);
    assert.equal(Object.hasOwn(merged, 'sid'), false);
    assert.equal(Object.hasOwn(merged, 'aud'), false);
    assert.equal(Object.hasOwn(merged, 'iss'), false);
  });

  it('keeps an attacker-named __proto__ claim as data, never as the prototype', () => {
    const hostile = JSON.parse('{"__proto__": {"admin": true}, "x\\r\\ny": "\\u00e9"}') as Record<
      string,
      unknown
    >;
    const merged = mergeClaims(idToken, [{ source: 'userinfo', claims: hostile }]);
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
    assert.equal((merged as { admin?: unknown }).admin, undefined);
    assert.deepEqual(Object.getOwnPropertyDescriptor(merged, '__proto__')?.value, { admin: true });
    assert.equal(merged['x\r\ny'], 'é');
  });
});

describe('claim sources at oidc-provider', () => {
  let provider: TestProvider;
  let jwtProvider: TestProvider;
  const kinds: IdpCallKind[] = [];
  let userinfo: StandaloneClient;
  let defaults: StandaloneClient;
  let jwtUserinfo: StandaloneClient;

  before(async () => {
    // Opaque access tokens, which userinfo accepts; a resource indicator gives JWT access tokens.
    provider = await startProvider({ users: [ALICE], accessTokenFormat: 'opaque' });
    jwtProvider = await startProvider({
      users: [ALICE],
      clients: [basicClient()],
      defaultResource: RESOURCE,
    });
    userinfo = await readyClient(
      provider,
      { claimsFrom: ['id_token', 'userinfo'] },
      {
        fetchTimeoutMs: 400,
        guard: (kind, call) => {
          kinds.push(kind);
          return call();
        },
      },
    );
    defaults = await readyClient(jwtProvider);
    jwtUserinfo = await readyClient(jwtProvider, { claimsFrom: ['userinfo', 'access_token'] });
  });
  after(async () => {
    for (const client of [userinfo, defaults, jwtUserinfo]) client.close();
    await Promise.all([provider.close(), jwtProvider.close()]);
  });

  it('adds the claims only userinfo serves, through the userinfo guard', async () => {
    kinds.length = 0;
    const { result } = await loginAndExchange(userinfo);
    assert.equal(Object.hasOwn(result.claims, 'department'), false, 'not in the ID token');
    assert.equal(result.sessionClaims['department'], 'finance');
    assert.equal(result.sessionClaims['https://example.com/tier'], 'gold');
    assert.equal(result.sessionClaims['sub'], 'alice');
    assert.equal(result.sessionClaims['email'], 'alice@example.com');
    assert.ok(kinds.includes('userinfo'));
    for (const name of ['iss', 'aud', 'exp', 'nonce', 'at_hash']) {
      assert.equal(Object.hasOwn(result.sessionClaims, name), false, name);
    }
  });

  it('fetches userinfo again after a refresh', async () => {
    const { result } = await loginAndExchange(userinfo);
    kinds.length = 0;
    const refreshed = await userinfo.refresh(result.tokens.refreshToken ?? '', {
      expectedSubject: 'alice',
      currentClaims: { sub: 'alice', department: 'old' },
    });
    assert.ok(kinds.includes('userinfo'));
    assert.equal(refreshed.claims?.['department'], 'finance');
  });

  it('keeps the rotated tokens and the claims it had when userinfo fails after a refresh', async () => {
    const { result } = await loginAndExchange(userinfo);
    provider.injectFault({ target: 'userinfo', status: 503, count: 1 });
    const refreshed = await userinfo.refresh(result.tokens.refreshToken ?? '', {
      expectedSubject: 'alice',
      currentClaims: { sub: 'alice', department: 'kept' },
    });
    assert.ok(refreshed.tokens.refreshToken !== undefined);
    assert.equal(refreshed.claims?.['department'], 'kept');
  });

  it('fails the login when userinfo names another sub', async () => {
    provider.injectFault({
      target: 'userinfo',
      status: 200,
      count: 1,
      reply: { contentType: 'application/json', body: '{"sub":"mallory","department":"x"}' },
    });
    await assert.rejects(
      loginAndExchange(userinfo),
      (err) =>
        err instanceof TokenInvalidError &&
        err.endpoint === 'userinfo' &&
        /sub differs from the ID token/.test(err.message),
    );
  });

  it('fails the login on a userinfo answer without sub', async () => {
    provider.injectFault({
      target: 'userinfo',
      status: 200,
      count: 1,
      reply: { contentType: 'application/json', body: '{"department":"x"}' },
    });
    await assert.rejects(loginAndExchange(userinfo), TokenInvalidError);
  });

  for (const [name, fault, reason] of [
    ['a 500', { status: 500 }, 'http_status'],
    ['a hang past the deadline', { latencyMs: 2_000 }, 'timeout'],
    [
      'an HTML page',
      { status: 200, reply: { contentType: 'text/html', body: '<html>sign in</html>' } },
      'invalid_response',
    ],
    [
      'a JSON array',
      { status: 200, reply: { contentType: 'application/json', body: '[{"sub":"alice"}]' } },
      'invalid_response',
    ],
    [
      'a huge body',
      {
        status: 200,
        reply: {
          contentType: 'application/json',
          body: JSON.stringify({ sub: 'alice', pad: 'x'.repeat(USERINFO_MAX_BYTES) }),
        },
      },
      'invalid_response',
    ],
    [
      'a huge chunked body',
      {
        status: 200,
        reply: {
          contentType: 'application/json',
          body: JSON.stringify({ sub: 'alice', pad: 'é'.repeat(USERINFO_MAX_BYTES) }),
          chunked: true,
        },
      },
      'invalid_response',
    ],
  ] as const) {
    it(`treats ${name} from userinfo as an outage at login`, async () => {
      provider.injectFault({ target: 'userinfo', count: 1, ...fault });
      await assert.rejects(
        loginAndExchange(userinfo),
        (err) =>
          err instanceof IdpUnavailableError &&
          err.endpoint === 'userinfo' &&
          err.reason === reason,
      );
    });
  }

  it('treats a 401 from userinfo as a refusal, not an outage', async () => {
    provider.injectFault({ target: 'userinfo', status: 401, body: 'empty', count: 1 });
    await assert.rejects(
      loginAndExchange(userinfo),
      (err) => err instanceof IdpError && err.endpoint === 'userinfo',
    );
  });

  it('accepts a signed userinfo JWT and refuses one for another audience or unsigned', async () => {
    const signed = await provider.signJwt({ sub: 'alice', aud: 'web', department: 'signed' });
    provider.injectFault({
      target: 'userinfo',
      status: 200,
      count: 1,
      reply: { contentType: 'application/jwt; charset=utf-8', body: signed },
    });
    const { result } = await loginAndExchange(userinfo);
    assert.equal(result.sessionClaims['department'], 'signed');

    const foreign = await provider.signJwt({ sub: 'alice', aud: 'other', department: 'x' });
    provider.injectFault({
      target: 'userinfo',
      status: 200,
      count: 1,
      reply: { contentType: 'application/jwt', body: foreign },
    });
    await assert.rejects(loginAndExchange(userinfo), TokenInvalidError);

    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(
      '{"sub":"alice"}',
    ).toString('base64url')}.`;
    provider.injectFault({
      target: 'userinfo',
      status: 200,
      count: 1,
      reply: { contentType: 'application/jwt', body: unsigned },
    });
    await assert.rejects(
      loginAndExchange(userinfo),
      (err) => !(err instanceof IdpUnavailableError),
    );
  });

  it('reads realm roles from a JWT access token by default (Keycloak)', async () => {
    const { result } = await loginAndExchange(defaults);
    assert.equal(Object.hasOwn(result.claims, 'realm_access'), false, 'not in the ID token');
    assert.deepEqual(result.sessionClaims['realm_access'], { roles: ['admin', 'user'] });
    assert.equal(result.sessionClaims['sub'], 'alice');
    assert.equal(Object.hasOwn(result.sessionClaims, 'aud'), false, 'the resource is not ours');
  });

  it('reads no claims from an opaque access token, silently', async () => {
    const client = await readyClient(provider, { claimsFrom: ['id_token', 'access_token'] });
    try {
      const { result } = await loginAndExchange(client);
      assert.equal(result.sessionClaims['sub'], 'alice');
      assert.equal(Object.hasOwn(result.sessionClaims, 'realm_access'), false);
    } finally {
      client.close();
    }
  });

  it('skips a JWT access token of another issuer, or one failing verification', async () => {
    const other = await startProvider({ users: [ALICE] });
    try {
      const forged = await other.signJwt({
        iss: jwtProvider.issuer,
        realm_access: { roles: ['x'] },
      });
      const policy = {
        issuer: jwtProvider.issuer,
        clientId: 'web',
        algorithms: ['RS256'],
        clockSkewMs: 30_000,
        now: Date.now,
      };
      assert.equal(await accessTokenClaims(forged, defaults.getKey, policy), undefined);
      const foreign = await other.signJwt({ realm_access: { roles: ['x'] } });
      assert.equal(await accessTokenClaims(foreign, defaults.getKey, policy), undefined);
      assert.equal(await accessTokenClaims('opaque-\r\n-é', defaults.getKey, policy), undefined);
    } finally {
      await other.close();
    }
  });

  it('fails the login when userinfo refuses the access token (a resource-bound one at oidc-provider)', async () => {
    await assert.rejects(loginAndExchange(jwtUserinfo), (err) => err instanceof IdpError);
  });
});
