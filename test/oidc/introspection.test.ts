/** RFC 7662 introspection through openid-client, at a real provider: outage versus refusal. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { clientCredentialsToken } from '../support/bearer-providers.ts';
import { createIntrospectionClient } from '../../src/oidc/introspection.ts';
import { IdpError, IdpUnavailableError } from '../../src/errors.ts';
import { createProvider, type Provider } from '../../src/oidc/provider.ts';
import { createBreakers, type Breakers } from '../../src/resilience/breakers.ts';
import { createIdpGuard } from '../../src/resilience/idp-guard.ts';
import { breakersTuning } from '../resilience/breaker-tuning.ts';
import { captureLog } from '../resilience/log-capture.ts';

const audience = 'https://api.example.com/';
const machineSecret = 'machine-client-secret-long-enough';
const introspectorSecret = 'introspector-secret-long-enough';

function opaqueToken(provider: TestProvider): Promise<string> {
  return clientCredentialsToken(
    provider,
    { id: 'machine', secret: machineSecret },
    { resource: audience },
  );
}

describe('token introspection at the shared provider', () => {
  let idp: TestProvider;

  before(async () => {
    idp = await startTestProvider({
      defaultResource: audience,
      accessTokenFormat: 'opaque',
      clients: [
        {
          clientId: 'machine',
          clientSecret: machineSecret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
        },
        {
          clientId: 'introspector',
          clientSecret: introspectorSecret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
        },
      ],
    });
  });

  after(() => idp.close());

  /** A provider for `idp` with breakers of its own, opening at 30% outages of 3 calls or more. */
  async function guardedProvider(): Promise<{ provider: Provider; breakers: Breakers }> {
    const breakers = createBreakers({
      registry: new Registry(),
      logger: captureLog().logger,
      ...breakersTuning({
        idp: { volumeThreshold: 3, errorThresholdPercentage: 30, resetTimeout: '60s' },
      }),
    });
    const provider = createProvider(
      { issuer: idp.issuer, name: 'orders', tlsInsecureSkipVerify: false },
      { guard: createIdpGuard(breakers.idp('orders')), fetchTimeoutMs: 300 },
    );
    await provider.ready;
    return { provider, breakers };
  }

  const introspector = (provider: Provider) =>
    createIntrospectionClient(provider, {
      clientId: 'introspector',
      clientSecret: introspectorSecret,
    });

  it('answers the claims of an active token and nothing for an inactive one', async () => {
    const { provider, breakers } = await guardedProvider();
    try {
      const client = introspector(provider);
      const claims = await client.introspect(await opaqueToken(idp));
      assert.equal(claims?.['active'], true);
      assert.equal(claims?.['client_id'], 'machine');
      assert.equal(await client.introspect('not-a-token-it-issued'), undefined);
      assert.equal(idp.counters().discovery, 1, 'the endpoint comes from the shared discovery');
    } finally {
      provider.close();
      breakers.shutdown();
    }
  });

  it('a refused client is IDP_ERROR and never trips the breaker; 5xx, 429 and timeouts are outages', async () => {
    const { provider, breakers } = await guardedProvider();
    try {
      const token = await opaqueToken(idp);
      const wrong = createIntrospectionClient(provider, {
        clientId: 'introspector',
        clientSecret: 'not-the-introspector-secret',
      });
      for (let i = 0; i < 5; i++) {
        await assert.rejects(
          wrong.introspect(token),
          (err) =>
            err instanceof IdpError &&
            err.code === 'IDP_ERROR' &&
            err.status === 502 &&
            err.oauthError === 'invalid_client' &&
            !err.message.includes('not-the-introspector-secret'),
        );
      }
      const breaker = breakers.idp('orders').introspection;
      assert.equal(breaker.state(), 'closed', 'a refusal is a verdict, not an outage');

      const client = introspector(provider);
      for (const status of [503, 429]) {
        idp.injectFault({ target: 'introspection', status, count: 1 });
        await assert.rejects(
          client.introspect(token),
          (err) =>
            err instanceof IdpUnavailableError &&
            err.status === 503 &&
            err.endpoint === 'introspection' &&
            err.httpStatus === status,
        );
      }
      idp.injectFault({ target: 'introspection', latencyMs: 600, count: 1 });
      await assert.rejects(
        client.introspect(token),
        (err) => err instanceof IdpUnavailableError && err.reason === 'timeout',
      );
      assert.equal(breaker.state(), 'open', 'three outages in eight calls (over 30%) open it');
      await assert.rejects(
        client.introspect(token),
        (err) =>
          err instanceof IdpUnavailableError &&
          err.reason === 'circuit_open' &&
          err.endpoint === 'introspection',
      );
      assert.equal(breakers.idp('orders').token.state(), 'closed', 'other calls are unaffected');
    } finally {
      provider.close();
      breakers.shutdown();
    }
  });

  it('a 400 with an empty body and an HTML page (400 or 200) are outages, never a verdict on the token', async () => {
    const { provider, breakers } = await guardedProvider();
    try {
      const token = await opaqueToken(idp);
      const client = introspector(provider);
      for (const [status, body] of [
        [400, 'empty'],
        [400, 'html'],
        [200, 'html'],
      ] as const) {
        idp.injectFault({ target: 'introspection', status, body, count: 1 });
        await assert.rejects(
          client.introspect(token),
          (err) =>
            err instanceof IdpUnavailableError &&
            err.status === 503 &&
            err.endpoint === 'introspection' &&
            err.reason === 'invalid_response',
          `${status} ${body}`,
        );
      }
      assert.equal(
        breakers.idp('orders').introspection.state(),
        'open',
        'counted as outages: three in three calls open the breaker',
      );
    } finally {
      provider.close();
      breakers.shutdown();
    }
  });
});
