import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { IdpError } from '../../src/errors.ts';
import { scriptedLogout } from '../support/scripted-login.ts';
import {
  loginAndExchange,
  POST_LOGOUT_URI,
  readyClient,
  type StandaloneClient,
  startProvider,
  timed,
} from './oidc-fixtures.ts';

describe('refresh, revocation and end-session', () => {
  let provider: TestProvider;
  let client: StandaloneClient;

  before(async () => {
    provider = await startProvider({ accessTokenTtlSeconds: 120 });
    client = await readyClient(provider);
  });
  after(async () => {
    client.close();
    await provider.close();
  });

  it('rotates the refresh token; the old one then fails with invalid_grant, counted at the provider', async (t) => {
    const { result } = await loginAndExchange(client);
    const first = result.tokens.refreshToken!;
    provider.resetCounters();

    const [refreshed, refreshMs] = await timed(() =>
      client.refresh(first, { expectedSubject: 'alice' }),
    );
    t.diagnostic(`refresh ${refreshMs}ms`);
    const second = refreshed.tokens.refreshToken;
    assert.ok(second !== undefined && second !== first, 'a new refresh token came back');
    assert.notEqual(refreshed.tokens.accessToken, result.tokens.accessToken);
    assert.ok(refreshed.claims !== undefined, 'a new, validated ID token came back');
    assert.equal(refreshed.claims.sub, 'alice');
    const left = refreshed.tokens.expiresAt! - Date.now();
    assert.ok(left > 110_000 && left <= 120_000, `expiresAt ${left} ms ahead`);

    await assert.rejects(
      client.refresh(first),
      (err) =>
        err instanceof IdpError && err.code === 'IDP_ERROR' && err.oauthError === 'invalid_grant',
    );
    const grants = provider.counters().grants['refresh_token'];
    assert.equal(grants?.['success'], 1);
    assert.equal(grants?.['invalid_grant'], 1);
    // Reuse detection revokes the whole grant (OAuth 2.0 Security BCP §4.14.2).
    await assert.rejects(
      client.refresh(second),
      (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
    );
  });

  it('gets invalid_grant after the provider revokes the grant', async () => {
    const { result } = await loginAndExchange(client);
    const [grantId] = provider.grantIds('alice', 'web').slice(-1);
    assert.ok(grantId !== undefined);
    await provider.revokeGrant(grantId);
    await assert.rejects(
      client.refresh(result.tokens.refreshToken!),
      (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
    );
  });

  it('revokes a refresh token (RFC 7009) so that it no longer refreshes', async () => {
    const { result } = await loginAndExchange(client);
    const before = provider.counters().revocation;
    assert.equal(await client.revoke(result.tokens.refreshToken!, 'refresh_token'), true);
    assert.equal(provider.counters().revocation, before + 1);
    await assert.rejects(
      client.refresh(result.tokens.refreshToken!),
      (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
    );
  });

  it('builds an end-session URL with id_token_hint, client_id and post_logout_redirect_uri that the provider honours', async () => {
    const { result, jar } = await loginAndExchange(client);
    const sessionsBefore = provider.findSessions({ accountId: 'alice' }).length;
    assert.ok(sessionsBefore > 0);
    const url = client.endSessionUrl({
      idTokenHint: result.tokens.idToken,
      postLogoutRedirectUri: POST_LOGOUT_URI,
      state: 'after-logout',
    });
    assert.ok(url !== null);
    assert.equal(url.origin + url.pathname, `${provider.issuer}/session/end`);
    assert.equal(url.searchParams.get('id_token_hint'), result.tokens.idToken);
    assert.equal(url.searchParams.get('client_id'), 'web');
    assert.equal(url.searchParams.get('post_logout_redirect_uri'), POST_LOGOUT_URI);
    assert.equal(url.searchParams.get('state'), 'after-logout');

    const done = await scriptedLogout(url, { jar });
    assert.equal(done.confirmed, true);
    assert.equal(done.finalUrl.origin + done.finalUrl.pathname, POST_LOGOUT_URI.slice(0, -1) + '/');
    assert.equal(done.finalUrl.searchParams.get('state'), 'after-logout');
    assert.equal(provider.findSessions({ accountId: 'alice' }).length, sessionsBefore - 1);
    // Session-bound refresh tokens die with the provider session.
    await assert.rejects(
      client.refresh(result.tokens.refreshToken!),
      (err) => err instanceof IdpError && err.oauthError === 'invalid_grant',
    );
  });
});
