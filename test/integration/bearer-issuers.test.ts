import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { clientCredentialsToken } from '../support/bearer-providers.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { statusOf } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';
const PARTNER_API = 'https://partner.example.com/';
const secret = 'machine-client-secret-long-enough';

/** A provider issuing JWT access tokens for `audience` to `machine` by client credentials. */
function machineProvider(audience: string): Promise<TestProvider> {
  return startTestProvider({
    defaultResource: audience,
    clients: [
      {
        clientId: 'machine',
        clientSecret: secret,
        redirectUris: [],
        grantTypes: ['client_credentials'],
      },
      { clientId: 'gateway', clientSecret: secret, redirectUris: ['https://api.example.com/cb'] },
    ],
  });
}

describe('bearer.issuers through the server: two real providers as two issuers', () => {
  let own: TestProvider;
  let partner: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    own = await machineProvider(API);
    partner = await machineProvider(PARTNER_API);
    server = await startTestServer({
      apps: [
        {
          name: 'api',
          oidc: { issuer: own.issuer, clientId: 'gateway', clientSecret: secret },
          session: { secrets: [testSessionSecret] },
          bearer: {
            enabled: true,
            audiences: [API],
            failureThrottle: { maxFailures: 1000 },
            issuers: [
              { issuer: partner.issuer, audiences: [PARTNER_API], identifierClaim: 'client_id' },
            ],
          },
        },
      ],
    });
    envoy = grpcModeEnvoy(server);
  });
  after(async () => {
    envoy.close();
    await server.close();
    await own.close();
    await partner.close();
  });

  const call = (token: string): Promise<Outcome> =>
    envoy.check({
      url: 'https://api.example.com/v1/items',
      headers: [
        ['authorization', `Bearer ${token}`],
        ['accept', 'application/json'],
      ],
    });

  it("accepts each provider's client-credentials token; the partner's keys are fetched only then", async () => {
    const partnerFetchesBefore = partner.counters().discovery + partner.counters().jwks;
    const mine = await clientCredentialsToken(own, { id: 'machine', secret }, { resource: API });
    assert.equal(statusOf(await call(mine)), 'allow');
    assert.equal(partner.counters().discovery + partner.counters().jwks, partnerFetchesBefore);
    const theirs = await clientCredentialsToken(
      partner,
      { id: 'machine', secret },
      { resource: PARTNER_API },
    );
    const outcome = await call(theirs);
    assert.equal(statusOf(outcome), 'allow');
    assert.ok(outcome.kind === 'allow');
    assert.equal(outcome.upstream.headers.get('x-auth-request-user'), 'machine');
  });

  it("refuses a partner token for the app's own audience, and an unknown issuer without a fetch", async () => {
    const wrongAudience = await partner.signJwt(
      { aud: API, sub: 'x', client_id: 'machine', exp: Math.floor(Date.now() / 1000) + 60 },
      { typ: 'at+jwt' },
    );
    assert.equal(statusOf(await call(wrongAudience)), 401);
    const before = own.counters().jwks + partner.counters().jwks;
    const unknown = await partner.signJwt(
      {
        iss: 'https://evil.example.com',
        aud: PARTNER_API,
        sub: 'x',
        exp: Math.floor(Date.now() / 1000) + 60,
      },
      { typ: 'at+jwt' },
    );
    assert.equal(statusOf(await call(unknown)), 401);
    assert.equal(own.counters().jwks + partner.counters().jwks, before);
  });
});
