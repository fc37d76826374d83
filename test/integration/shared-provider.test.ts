/** Apps on one issuer share one provider: one discovery, one JWKS fetch, one probe loop (SPEC §8). */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { clientCredentialsToken } from '../support/bearer-providers.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser } from '../support/browser.ts';
import type { EnvoyClient } from '../support/envoy-client.ts';
import {
  startTestServer,
  testConfig,
  testSessionSecret,
  type TestServer,
} from '../support/test-server.ts';

const audience = 'https://api.example.com/';
const machineSecret = 'machine-client-secret-long-enough';
const names = ['alpha', 'beta'] as const;
const secretOf = (name: string) => `${name}-client-secret-long-enough`;

function appOn(issuer: string, name: string, oidc: Record<string, unknown> = {}) {
  return {
    name,
    match: { hosts: [`${name}.example.com`] },
    oidc: { issuer, clientId: name, clientSecret: secretOf(name), probeInterval: '1h', ...oidc },
    session: { secrets: [testSessionSecret] },
    bearer: { enabled: true, audiences: [audience] },
  };
}

function machineToken(provider: TestProvider): Promise<string> {
  return clientCredentialsToken(
    provider,
    { id: 'machine', secret: machineSecret },
    { resource: audience },
  );
}

describe('two apps on one issuer', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      defaultResource: audience,
      clients: [
        ...names.map((name) => ({
          clientId: name,
          clientSecret: secretOf(name),
          redirectUris: [`https://${name}.example.com/oauth2/callback`],
        })),
        {
          clientId: 'machine',
          clientSecret: machineSecret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
        },
      ],
    });
    server = await startTestServer({
      apps: names.map((name) => appOn(provider.issuer, name)),
    });
    envoy = grpcModeEnvoy(server);
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('cost one discovery fetch and one JWKS fetch, however many logins and bearer tokens', async () => {
    assert.equal(provider.counters().discovery, 1, 'one discovery for both apps');
    const token = await machineToken(provider);
    for (const name of names) {
      const browser = new AppBrowser(envoy);
      const origin = `https://${name}.example.com`;
      assert.equal(await browser.login(`${origin}/`), `${origin}/`);
      const page = await browser.request(`${origin}/`);
      assert.equal(page.kind, 'allow', `${name}: the session works`);

      const machine = await new AppBrowser(envoy).request(`${origin}/api`, {
        navigate: false,
        headers: [['authorization', `Bearer ${token}`]],
      });
      assert.equal(machine.kind, 'allow', `${name}: the bearer JWT verifies`);
      assert.equal(
        machine.kind === 'allow' && machine.upstream.headers.get('x-auth-request-user'),
        'machine',
      );
    }
    const counters = provider.counters();
    assert.equal(counters.grants['authorization_code']?.['success'], 2, 'both apps logged in');
    assert.equal(counters.discovery, 1, 'one discovery for both apps');
    assert.equal(counters.jwks, 1, 'one JWKS fetch for both apps');
  });

  it('keeps the provider across a reload that still uses the issuer, and stops a removed one', async () => {
    // A second issuer whose discovery keeps failing, so its provider keeps retrying.
    const failing = await startTestProvider({ clients: [] });
    failing.injectFault({ target: 'discovery', status: 503 });
    try {
      const apps = [appOn(provider.issuer, 'alpha'), appOn(provider.issuer, 'beta')];
      server.handle.reload(testConfig({ apps: [...apps, appOn(failing.issuer, 'gamma')] }));
      const deadline = Date.now() + 5_000;
      while (failing.counters().discovery < 2) {
        assert.ok(Date.now() < deadline, 'the failing provider is retried');
        await sleep(20);
      }

      server.handle.reload(testConfig({ apps }));
      const attempts = failing.counters().discovery;
      // The next retry was due within a second (250 ms doubling); none may come.
      await sleep(1_200);
      assert.equal(failing.counters().discovery, attempts, 'the removed issuer is not retried');
      assert.equal(provider.counters().discovery, 1, 'the kept issuer was not discovered again');

      const origin = 'https://beta.example.com';
      const browser = new AppBrowser(envoy);
      assert.equal(await browser.login(`${origin}/`), `${origin}/`);
      assert.equal(provider.counters().jwks, 1, 'the kept issuer kept its keys');
    } finally {
      await failing.close();
    }
  });
});
