import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { exportJWK } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { ConfigError } from '../../src/errors.ts';
import { createOidcClient } from '../../src/oidc/oidc-client.ts';
import { basicEncodingHint } from '../../src/oidc/client-authentication.ts';
import { captureLog } from '../resilience/log-capture.ts';
import { IdpError } from '../../src/errors.ts';
import { createProvider } from '../../src/oidc/provider.ts';
import {
  REDIRECT_URI,
  basicClient,
  clientDeps,
  clientOptions,
  createStandaloneClient,
  login,
  loginAndExchange,
  readyClient,
  startProvider,
} from './oidc-fixtures.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('client authentication at the token endpoint', () => {
  let provider: TestProvider;

  before(async () => {
    const ecPublic = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
    provider = await startProvider({
      clients: [
        basicClient({ clientId: 'basic' }),
        basicClient({ clientId: 'post', authMethod: 'client_secret_post' }),
        basicClient({
          clientId: 'pkjwt-rsa',
          authMethod: 'private_key_jwt',
          publicJwk: { ...(await exportJWK(rsa.publicKey)), use: 'sig' },
        }),
        basicClient({ clientId: 'pkjwt-ec', authMethod: 'private_key_jwt', publicJwk: ecPublic }),
        basicClient({ clientId: 'public', authMethod: 'none' }),
      ].map(({ clientSecret, ...c }) =>
        c.authMethod === 'private_key_jwt' || c.authMethod === 'none'
          ? c
          : { ...c, ...(clientSecret === undefined ? {} : { clientSecret }) },
      ),
    });
  });
  after(() => provider.close());

  const cases = [
    { name: 'client_secret_basic', clientId: 'basic', clientAuth: 'client_secret_basic' },
    { name: 'client_secret_post', clientId: 'post', clientAuth: 'client_secret_post' },
    {
      name: 'private_key_jwt with an RSA PEM',
      clientId: 'pkjwt-rsa',
      clientAuth: 'private_key_jwt',
      privateKey: () => rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    },
    {
      name: 'private_key_jwt with an EC JWK',
      clientId: 'pkjwt-ec',
      clientAuth: 'private_key_jwt',
      privateKey: () => JSON.stringify({ ...ec.privateKey.export({ format: 'jwk' }), kid: 'ec-1' }),
    },
    { name: 'none (public client, PKCE only)', clientId: 'public', clientAuth: 'none' },
  ] as const;

  for (const c of cases) {
    it(`exchanges and refreshes with ${c.name}`, async () => {
      const before = provider.counters().grants['authorization_code']?.['success'] ?? 0;
      const client = await readyClient(provider, {
        clientId: c.clientId,
        clientAuth: c.clientAuth,
        clientSecret: c.clientAuth.startsWith('client_secret')
          ? 'a-client-secret-that-is-long-enough'
          : undefined,
        privateKey: 'privateKey' in c ? c.privateKey() : undefined,
      });
      try {
        const { result } = await loginAndExchange(client);
        assert.equal(result.claims.aud, c.clientId);
        assert.equal(provider.counters().grants['authorization_code']?.['success'], before + 1);
        const refreshed = await client.refresh(result.tokens.refreshToken!);
        assert.ok(refreshed.tokens.accessToken.length > 20);
      } finally {
        client.close();
      }
    });
  }

  it('reports a wrong secret as IDP_ERROR invalid_client', async () => {
    const client = await readyClient(provider, {
      clientId: 'basic',
      clientSecret: 'not-the-secret',
    });
    try {
      const loggedIn = await login(client);
      await assert.rejects(
        client.exchangeCode({
          params: loggedIn.callbackUrl.searchParams,
          redirectUri: REDIRECT_URI,
          codeVerifier: loggedIn.secrets.codeVerifier,
          expectedState: loggedIn.secrets.state,
          expectedNonce: loggedIn.secrets.nonce,
        }),
        (err) =>
          err instanceof IdpError &&
          err.oauthError === 'invalid_client' &&
          !err.message.includes('not-the-secret'),
      );
      assert.ok((provider.counters().grants['authorization_code']?.['invalid_client'] ?? 0) >= 1);
    } finally {
      client.close();
    }
  });

  for (const [what, clientSecret, hinted] of [
    ['a secret that form-encoding changes', 'not-the-secret', true],
    ['a secret of letters and digits', 'notTheSecret0123456789', false],
  ] as const) {
    it(`a refused client_secret_basic with ${what} carries ${hinted ? 'the' : 'no'} encoding hint, naming no secret`, async () => {
      const log = captureLog();
      const client = await readyClient(
        provider,
        { clientId: 'basic', clientSecret },
        { logger: log.logger },
      );
      try {
        const loggedIn = await login(client);
        let refused: unknown;
        await client
          .exchangeCode({
            params: loggedIn.callbackUrl.searchParams,
            redirectUri: REDIRECT_URI,
            codeVerifier: loggedIn.secrets.codeVerifier,
            expectedState: loggedIn.secrets.state,
            expectedNonce: loggedIn.secrets.nonce,
          })
          .catch((error: unknown) => (refused = error));
        assert.ok(refused instanceof IdpError && refused.oauthError === 'invalid_client');
        assert.equal(refused.hint !== undefined, hinted);
        if (hinted) assert.match(refused.message, /hint: .*client_secret_post/);
        // The callback logs a refused exchange once, with the request id and this hint.
        assert.equal(log.matching(/refused the client credentials/).length, 0);
        if (hinted) assert.match(String(refused.hint), /RFC 6749 §2\.3\.1.*raw value/);
        assert.ok(!log.text().includes(clientSecret), 'the secret is never logged');
        assert.ok(!refused.message.includes(clientSecret));
      } finally {
        client.close();
      }
    });
  }

  it('hints at the Basic encoding only for client_secret_basic and a value it changes', () => {
    const hint = (
      clientAuth: 'client_secret_basic' | 'client_secret_post',
      clientSecret: string,
      clientId = 'web',
    ) => basicEncodingHint({ clientAuth, clientId, clientSecret });
    assert.equal(hint('client_secret_basic', 'abcDEF0123456789'), undefined);
    assert.equal(hint('client_secret_post', 'a-b'), undefined);
    for (const secret of [
      'a-b',
      'a b',
      'a+b',
      'ä',
      'a\r\nb',
      '%41',
      'x'.repeat(100_000) + '.',
      '~',
    ]) {
      const text = hint('client_secret_basic', secret);
      assert.ok(text !== undefined, JSON.stringify(secret.slice(0, 10)));
      assert.ok(!text.includes(secret), 'names no secret');
      assert.doesNotMatch(text, /[\r\n]/);
      assert.match(text, /client secret/);
    }
    assert.match(hint('client_secret_basic', 'plain', 'my-app')!, /the client id has/);
    assert.match(hint('client_secret_basic', 'a_b', 'my.app')!, /client id and secret/);
    assert.equal(
      basicEncodingHint({ clientAuth: 'client_secret_basic', clientId: 'web' }),
      undefined,
      'no secret, nothing to say',
    );
  });

  it('refuses options that cannot work, naming each problem and never the secret', () => {
    const shared = createProvider({
      issuer: provider.issuer,
      name: 'shared',
      tlsInsecureSkipVerify: false,
    });
    try {
      assert.throws(
        () =>
          createOidcClient(
            shared,
            clientOptions(
              { issuer: 'http://idp.example.com' },
              { clientAuth: 'client_secret_post', clientSecret: '', idTokenAlgs: ['HS256'] },
            ),
            clientDeps(),
          ),
        (err) =>
          err instanceof ConfigError &&
          ['oidc.issuer', 'oidc.clientSecret', 'oidc.idTokenAlgs'].every((p) =>
            err.problems.some((problem) => problem.path === p),
          ),
      );
    } finally {
      shared.close();
    }
    assert.throws(
      () =>
        createProvider({
          issuer: 'http://idp.example.com',
          name: 'idp',
          tlsInsecureSkipVerify: false,
        }),
      (err) => err instanceof ConfigError && err.problems.some((p) => p.path === 'oidc.issuer'),
    );
    assert.throws(
      () =>
        createStandaloneClient(
          clientOptions(provider, { clientAuth: 'private_key_jwt', privateKey: 'SECRET-ish junk' }),
          clientDeps(),
        ),
      (err) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.path === 'oidc.privateKey') &&
        !err.message.includes('SECRET-ish'),
    );
  });
});
