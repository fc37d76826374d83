import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { basicClient, loginAndExchange, readyClient, startProvider } from './oidc-fixtures.ts';

const API = 'https://api.example.com/';

describe('development provider', () => {
  it('issues JWT access tokens for the default resource, verifiable with the shared JWKS', async () => {
    const provider = await startProvider({
      defaultResource: API,
      clients: [
        basicClient({ grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] }),
      ],
    });
    const client = await readyClient(provider);
    try {
      const { result } = await loginAndExchange(client);
      const accessToken = result.tokens.accessToken;
      assert.equal(decodeProtectedHeader(accessToken).typ, 'at+jwt');
      const { payload } = await jwtVerify(accessToken, client.getKey, {
        issuer: provider.issuer,
        audience: API,
      });
      assert.equal(payload.sub, 'alice');
      assert.equal(payload['client_id'], 'web');
      // The ID token is still for the client.
      assert.equal(result.claims.aud, 'web');

      // client_credentials for machine clients, and introspection of what it issued.
      const basic = Buffer.from(`web:${'a-client-secret-that-is-long-enough'}`).toString('base64');
      const tokenResponse = await fetch(`${provider.issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${basic}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          resource: API,
          scope: 'api:read',
        }),
      });
      assert.equal(tokenResponse.status, 200);
      const machine = (await tokenResponse.json()) as { access_token: string };
      const machineClaims = (
        await jwtVerify(machine.access_token, client.getKey, { audience: API })
      ).payload;
      assert.equal(machineClaims['client_id'], 'web');
      assert.equal(machineClaims.sub, 'web');
      const introspection = await fetch(`${provider.issuer}/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${basic}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: result.tokens.refreshToken! }),
      });
      assert.equal(((await introspection.json()) as { active: boolean }).active, true);
      const counters = provider.counters();
      assert.equal(counters.grants['client_credentials']?.['success'], 1);
      assert.equal(counters.introspection, 1);
      assert.equal(counters.jwks, 1, 'one JWKS fetch served every verification');
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('keeps issuer, keys and state across stop() and start()', async () => {
    const provider = await startProvider();
    const client = await readyClient(provider);
    try {
      const { result } = await loginAndExchange(client);
      const issuer = provider.issuer;
      await provider.stop();
      await assert.rejects(fetch(`${issuer}/.well-known/openid-configuration`));
      await provider.start();
      assert.equal(provider.issuer, issuer);
      const metadata = (await (
        await fetch(`${issuer}/.well-known/openid-configuration`)
      ).json()) as {
        issuer: string;
      };
      assert.equal(metadata.issuer, issuer);
      const refreshed = await client.refresh(result.tokens.refreshToken!);
      assert.equal(decodeProtectedHeader(refreshed.tokens.idToken!).kid, provider.keys.RS256.kid);
    } finally {
      client.close();
      await provider.close();
    }
  });
});
