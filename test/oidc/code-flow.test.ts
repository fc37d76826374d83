import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { DEMO_USER } from '../../dev/test-provider.ts';
import { IdpError, TokenInvalidError } from '../../src/errors.ts';
import { createLoginSecrets } from '../../src/oidc/pkce.ts';
import { AuthzError } from '../../src/errors.ts';
import { scriptedLogin } from '../support/scripted-login.ts';
import {
  basicClient,
  login,
  loginAndExchange,
  readyClient,
  REDIRECT_URI,
  type StandaloneClient,
  startProvider,
  timed,
} from './oidc-fixtures.ts';

const BIG_USER = {
  sub: 'bigclaims',
  email: 'big@example.com',
  emailVerified: true,
  groups: ['g1'],
  extraClaims: { padding: 'x'.repeat(10 * 1024), nested: { roles: ['a', 'b'] } },
};

describe('authorization code flow', () => {
  let provider: TestProvider;
  let client: StandaloneClient;

  before(async () => {
    provider = await startProvider({
      users: [DEMO_USER, BIG_USER],
      clients: [basicClient(), basicClient({ clientId: 'es', idTokenSignedResponseAlg: 'ES256' })],
    });
    client = await readyClient(provider);
  });
  after(async () => {
    client.close();
    await provider.close();
  });

  it('builds an authorization URL with PKCE S256, state, nonce and our parameters', () => {
    const secrets = createLoginSecrets();
    const url = new URL(
      client.authorizationLocation({
        redirectUri: REDIRECT_URI,
        state: secrets.state,
        nonce: secrets.nonce,
        codeChallenge: secrets.codeChallenge,
      }),
    );
    assert.equal(url.origin + url.pathname, `${provider.issuer}/auth`);
    const q = url.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), 'web');
    assert.equal(q.get('redirect_uri'), REDIRECT_URI);
    assert.equal(q.get('scope'), 'openid email profile offline_access');
    assert.equal(q.get('state'), secrets.state);
    assert.equal(q.get('nonce'), secrets.nonce);
    assert.equal(q.get('code_challenge'), secrets.codeChallenge);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(secrets.codeChallenge, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(secrets.codeChallenge, secrets.codeVerifier);
  });

  it('spells the authorization location exactly as the URL serializer does', () => {
    for (const redirectUri of [REDIRECT_URI, 'https://other.example.com:8443/oauth2/callback']) {
      const secrets = createLoginSecrets();
      const params = {
        redirectUri,
        state: secrets.state,
        nonce: secrets.nonce,
        codeChallenge: secrets.codeChallenge,
      };
      // Per-request extras (even none) take the path that builds a URL each time.
      const built = client.authorizationLocation({ ...params, extraAuthParams: {} });
      assert.equal(new URL(built).href, built);
      assert.equal(client.authorizationLocation(params), built);
    }
  });

  it('never lets extraAuthParams override redirect_uri, state, code_challenge or scope', async () => {
    const hostile = await readyClient(provider, {
      extraAuthParams: {
        redirect_uri: 'https://evil.example/cb',
        state: 'forged',
        code_challenge: 'forged',
        code_challenge_method: 'plain',
        scope: 'openid',
        client_id: 'other',
        response_mode: 'fragment',
        ui_locales: 'de',
      },
    });
    try {
      const secrets = createLoginSecrets();
      const url = new URL(
        hostile.authorizationLocation({
          redirectUri: REDIRECT_URI,
          state: secrets.state,
          nonce: secrets.nonce,
          codeChallenge: secrets.codeChallenge,
          extraAuthParams: { state: 'forged-too', login_hint: 'alice' },
        }),
      );
      const q = url.searchParams;
      assert.deepEqual(q.getAll('redirect_uri'), [REDIRECT_URI]);
      assert.deepEqual(q.getAll('state'), [secrets.state]);
      assert.deepEqual(q.getAll('code_challenge'), [secrets.codeChallenge]);
      assert.deepEqual(q.getAll('code_challenge_method'), ['S256']);
      assert.deepEqual(q.getAll('client_id'), ['web']);
      assert.equal(q.get('scope'), 'openid email profile offline_access');
      assert.equal(q.has('response_mode'), false);
      assert.equal(q.get('ui_locales'), 'de');
      assert.equal(q.get('login_hint'), 'alice');
      // And the provider accepts the result: the flow still completes.
      const result = await scriptedLogin(url, { login: 'alice' });
      assert.equal(result.callbackUrl.searchParams.get('state'), secrets.state);
    } finally {
      hostile.close();
    }
  });

  it('exchanges the code for tokens and validated claims with email and groups', async (t) => {
    const loggedIn = await login(client);
    const [result, exchangeMs] = await timed(() =>
      client.exchangeCode({
        params: loggedIn.callbackUrl.searchParams,
        redirectUri: REDIRECT_URI,
        codeVerifier: loggedIn.secrets.codeVerifier,
        expectedState: loggedIn.secrets.state,
        expectedNonce: loggedIn.secrets.nonce,
      }),
    );
    t.diagnostic(
      `login steps: ${loggedIn.steps.map((s) => `${s.method} ${s.path.split('/')[1] ?? ''} ${s.status} ${s.ms}ms`).join(', ')}; exchange ${exchangeMs}ms`,
    );
    const { tokens, claims } = result;
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.iss, provider.issuer);
    assert.equal(claims.aud, 'web');
    assert.equal(claims.nonce, loggedIn.secrets.nonce);
    assert.equal(claims['email'], 'alice@example.com');
    assert.equal(claims['email_verified'], true);
    assert.deepEqual(claims['groups'], ['admins', 'users']);
    assert.ok(tokens.accessToken.length > 20);
    assert.ok(tokens.refreshToken !== undefined && tokens.refreshToken.length > 20);
    assert.equal(tokens.idToken.split('.').length, 3);
    // expires_in defaults to 300 s at the test provider.
    const left = tokens.expiresAt - Date.now();
    assert.ok(left > 290_000 && left <= 300_000, `expiresAt ${left} ms ahead`);
    assert.deepEqual(
      provider.counters().grants['authorization_code']?.['success'] !== undefined,
      true,
    );
  });

  it('accepts the callback as bare query parameters', async () => {
    const loggedIn = await login(client);
    const result = await client.exchangeCode({
      params: loggedIn.callbackUrl.searchParams,
      redirectUri: REDIRECT_URI,
      codeVerifier: loggedIn.secrets.codeVerifier,
      expectedState: loggedIn.secrets.state,
      expectedNonce: loggedIn.secrets.nonce,
    });
    assert.equal(result.claims.sub, 'alice');
  });

  it('rejects a state that is not the one this browser started with', async () => {
    const loggedIn = await login(client);
    await assert.rejects(
      client.exchangeCode({
        params: loggedIn.callbackUrl.searchParams,
        redirectUri: REDIRECT_URI,
        codeVerifier: loggedIn.secrets.codeVerifier,
        expectedState: 'another-login-state',
        expectedNonce: loggedIn.secrets.nonce,
      }),
      (err) => err instanceof AuthzError && err.code === 'STATE_INVALID',
    );
  });

  it('rejects an ID token whose nonce is not ours', async () => {
    const loggedIn = await login(client);
    await assert.rejects(
      client.exchangeCode({
        params: loggedIn.callbackUrl.searchParams,
        redirectUri: REDIRECT_URI,
        codeVerifier: loggedIn.secrets.codeVerifier,
        expectedState: loggedIn.secrets.state,
        expectedNonce: 'someone-elses-nonce',
      }),
      (err) => err instanceof TokenInvalidError && err.code === 'TOKEN_INVALID',
    );
  });

  it('reports a replayed code and a wrong PKCE verifier as IDP_ERROR invalid_grant', async () => {
    const loggedIn = await loginAndExchange(client);
    const replay = client.exchangeCode({
      params: loggedIn.callbackUrl.searchParams,
      redirectUri: REDIRECT_URI,
      codeVerifier: loggedIn.secrets.codeVerifier,
      expectedState: loggedIn.secrets.state,
      expectedNonce: loggedIn.secrets.nonce,
    });
    await assert.rejects(
      replay,
      (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
    );

    const fresh = await login(client);
    const otherVerifier = createLoginSecrets().codeVerifier;
    await assert.rejects(
      client.exchangeCode({
        params: fresh.callbackUrl.searchParams,
        redirectUri: REDIRECT_URI,
        codeVerifier: otherVerifier,
        expectedState: fresh.secrets.state,
        expectedNonce: fresh.secrets.nonce,
      }),
      (err) =>
        err instanceof IdpError && err.code === 'IDP_ERROR' && err.oauthError === 'invalid_grant',
    );
    assert.ok((provider.counters().grants['authorization_code']?.['invalid_grant'] ?? 0) >= 2);
  });

  it('turns an error on the callback (access_denied) into IDP_ERROR', async () => {
    const secrets = createLoginSecrets();
    const params = new URLSearchParams({
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
      state: secrets.state,
      iss: provider.issuer,
    });
    await assert.rejects(
      client.exchangeCode({
        params,
        redirectUri: REDIRECT_URI,
        codeVerifier: secrets.codeVerifier,
        expectedState: secrets.state,
        expectedNonce: secrets.nonce,
      }),
      (err) => err instanceof IdpError && err.oauthError === 'access_denied',
    );
  });

  it('round-trips an ID token carrying 10 KB of extra claims', async () => {
    const { result } = await loginAndExchange(client, 'bigclaims');
    assert.ok(
      result.tokens.idToken.length > 10 * 1024,
      `ID token is ${result.tokens.idToken.length} bytes`,
    );
    assert.equal(result.claims['padding'], BIG_USER.extraClaims.padding);
    assert.deepEqual(result.claims['nested'], { roles: ['a', 'b'] });
  });

  it('enforces the ID-token alg allow-list and accepts ES256 when listed', async () => {
    const esOnly = await readyClient(provider, { idTokenAlgs: ['ES256'] });
    try {
      const loggedIn = await login(esOnly);
      await assert.rejects(
        esOnly.exchangeCode({
          params: loggedIn.callbackUrl.searchParams,
          redirectUri: REDIRECT_URI,
          codeVerifier: loggedIn.secrets.codeVerifier,
          expectedState: loggedIn.secrets.state,
          expectedNonce: loggedIn.secrets.nonce,
        }),
        (err) => err instanceof TokenInvalidError && /ALG_NOT_ALLOWED/.test(err.reason),
      );
    } finally {
      esOnly.close();
    }
    const es = await readyClient(provider, { clientId: 'es', idTokenAlgs: ['ES256'] });
    try {
      const { result } = await loginAndExchange(es);
      assert.equal(result.claims.aud, 'es');
      const header = JSON.parse(
        Buffer.from(result.tokens.idToken.split('.')[0]!, 'base64url').toString(),
      ) as { alg: string; kid: string };
      assert.equal(header.alg, 'ES256');
      assert.equal(header.kid, provider.keys.ES256.kid);
    } finally {
      es.close();
    }
  });
});
