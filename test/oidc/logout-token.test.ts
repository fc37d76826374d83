import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT, generateKeyPair } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { logoutTokenAlgorithms } from '../../src/oidc/oidc-client.ts';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/oidc/logout-token.ts';
import { TokenInvalidError } from '../../src/errors.ts';
import { scriptedLogout } from '../support/scripted-login.ts';
import {
  basicClient,
  loginAndExchange,
  POST_LOGOUT_URI,
  readyClient,
  type StandaloneClient,
  startProvider,
} from './oidc-fixtures.ts';

const EVENTS = { [BACKCHANNEL_LOGOUT_EVENT]: {} };

describe('back-channel logout tokens', () => {
  let provider: TestProvider;
  let client: StandaloneClient;
  const received: string[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (token !== null) received.push(token);
      res.writeHead(200).end();
    });
  });

  before(async () => {
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.address() as AddressInfo;
    provider = await startProvider({
      clients: [
        basicClient({ backchannelLogoutUri: `http://127.0.0.1:${port}/oauth2/backchannel-logout` }),
      ],
    });
    client = await readyClient(provider);
  });
  after(async () => {
    client.close();
    await provider.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  const sign = (
    payload: Record<string, unknown>,
    options?: { typ?: string; alg?: 'RS256' | 'ES256' },
  ) =>
    provider.signJwt(
      { aud: 'web', jti: crypto.randomUUID(), sid: 'sid-1', events: EVENTS, ...payload },
      options,
    );

  it('verifies the logout token the provider itself sends when the user signs out', async () => {
    const { result, jar } = await loginAndExchange(client);
    const sid = result.claims.sid;
    assert.ok(typeof sid === 'string' && sid.length > 0, 'ID token carries sid');
    assert.equal(provider.findSessions({ sid }).length, 1);

    const url = client.endSessionUrl({
      idTokenHint: result.tokens.idToken,
      postLogoutRedirectUri: POST_LOGOUT_URI,
    });
    await scriptedLogout(url!, { jar });
    assert.equal(provider.counters().backchannelLogout.success, 1, provider.lastBackchannelError());
    assert.equal(received.length, 1);
    const claims = await client.verifyLogoutToken(received[0]!);
    assert.equal(claims.sid, sid);
    assert.equal(claims.sub, 'alice');
    assert.ok(claims.jti.length > 0);
    assert.ok(Math.abs(claims.iat * 1000 - Date.now()) < 60_000);
    assert.equal(provider.findSessions({ sid }).length, 0);
  });

  it('accepts typ logout+jwt and ES256 when allowed', async () => {
    const claims = await client.verifyLogoutToken(
      await sign({ sub: 'bob' }, { typ: 'logout+jwt', alg: 'ES256' }),
    );
    assert.equal(claims.sid, 'sid-1');
    assert.equal(claims.sub, 'bob');
  });

  const refusals: [string, () => Promise<string>, RegExp][] = [
    ['a nonce (an ID token replayed as a logout token)', () => sign({ nonce: 'n' }), /nonce/],
    ['the wrong audience', () => sign({ aud: 'someone-else' }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['missing events', () => sign({ events: undefined }), /events missing/],
    [
      'events without the back-channel event',
      () => sign({ events: { 'urn:other': {} } }),
      /event missing/,
    ],
    ['neither sid nor sub', () => sign({ sid: undefined }), /neither sid nor sub/],
    ['no jti', () => sign({ jti: undefined }), /ERR_JWT_CLAIM_VALIDATION_FAILED|jti/],
    [
      'an iat older than the maximum age',
      () => sign({ iat: Math.floor(Date.now() / 1000) - 3600 }),
      /ERR_JWT_EXPIRED|CLAIM/,
    ],
    [
      'another issuer',
      () => sign({ iss: 'https://evil.example' }),
      /ERR_JWT_CLAIM_VALIDATION_FAILED/,
    ],
    ['an unexpected typ', () => sign({}, { typ: 'at+jwt' }), /typ/],
    [
      'a key the provider does not publish',
      async () => {
        const { privateKey } = await generateKeyPair('RS256');
        return new SignJWT({ iss: provider.issuer, aud: 'web', jti: 'x', sid: 's', events: EVENTS })
          .setProtectedHeader({ alg: 'RS256', kid: provider.keys.RS256.kid })
          .setIssuedAt()
          .sign(privateKey);
      },
      /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
    ],
    [
      'an HMAC-signed token',
      () =>
        new SignJWT({ iss: provider.issuer, aud: 'web', jti: 'x', sid: 's', events: EVENTS })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuedAt()
          .sign(new Uint8Array(32)),
      /ERR_JOSE_ALG_NOT_ALLOWED/,
    ],
  ];
  for (const [name, make, reason] of refusals) {
    it(`refuses a logout token with ${name}`, async () => {
      const token = await make();
      await assert.rejects(client.verifyLogoutToken(token), (err) => {
        assert.ok(err instanceof TokenInvalidError, String(err));
        assert.equal(err.code, 'TOKEN_INVALID');
        assert.match(err.reason, reason);
        assert.ok(!err.message.includes(token), 'the token is not echoed');
        return true;
      });
    });
  }
});

describe('logout token algorithms: the provider ID-token algorithms the app allows', () => {
  it('intersects discovery with idTokenAlgs, RS256 when discovery names none', () => {
    assert.deepEqual(logoutTokenAlgorithms(['RS256'], ['RS256', 'ES256', 'PS256']), ['RS256']);
    assert.deepEqual(logoutTokenAlgorithms(['ES256', 'RS256', 'HS256'], ['RS256', 'ES256']), [
      'RS256',
      'ES256',
    ]);
    assert.deepEqual(logoutTokenAlgorithms(undefined, ['ES256', 'RS256']), ['RS256']);
    assert.deepEqual(logoutTokenAlgorithms(['ES256'], ['RS256']), []);
  });

  describe('a provider that signs ID tokens with RS256 only', () => {
    let provider: TestProvider;
    let client: StandaloneClient;
    before(async () => {
      provider = await startProvider({ idTokenSigningAlgs: ['RS256'] });
      client = await readyClient(provider, { idTokenAlgs: ['RS256', 'ES256', 'PS256', 'EdDSA'] });
    });
    after(async () => {
      client.close();
      await provider.close();
    });

    const sign = (alg: 'RS256' | 'ES256') =>
      provider.signJwt(
        { aud: 'web', jti: crypto.randomUUID(), sid: 'sid-1', events: EVENTS },
        { alg },
      );

    it('refuses a logout token signed with its ES256 key, though the JWKS holds that key', async () => {
      await assert.rejects(client.verifyLogoutToken(await sign('ES256')), (err) => {
        assert.ok(err instanceof TokenInvalidError, String(err));
        assert.match(err.reason, /ERR_JOSE_ALG_NOT_ALLOWED/);
        return true;
      });
      assert.equal((await client.verifyLogoutToken(await sign('RS256'))).sid, 'sid-1');
    });

    it('refuses every logout token when idTokenAlgs shares no algorithm with the provider', async () => {
      const disjoint = await readyClient(provider, { idTokenAlgs: ['ES256'] });
      try {
        await assert.rejects(disjoint.verifyLogoutToken(await sign('RS256')), (err) => {
          assert.ok(err instanceof TokenInvalidError, String(err));
          assert.match(err.reason, /no algorithm allowed/);
          return true;
        });
      } finally {
        disjoint.close();
      }
    });
  });
});
