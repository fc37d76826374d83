import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, deniedHeader, statusOf } from '../support/browser.ts';
import type { EnvoyClient } from '../support/envoy-client.ts';
import { startProviderDouble, type ProviderDouble } from '../support/provider-double.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';

const TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';
const OTHER_TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const origin = 'https://app.example.com';

describe('entra profile through the server: a multi-tenant login', () => {
  let double: ProviderDouble;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    double = await startProviderDouble({
      issuerPath: '/organizations/v2.0',
      announcedIssuer: '{origin}/{tenantid}/v2.0',
    });
    server = await startTestServer({
      apps: [
        {
          name: 'app',
          oidc: {
            provider: 'entra',
            issuer: double.issuer,
            clientId: 'web',
            clientSecret: 'web-client-secret-long-enough',
            tenants: [TENANT],
          },
          session: { secrets: [testSessionSecret] },
          authorization: { allowedDomains: ['contoso.com'] },
        },
      ],
    });
    envoy = grpcModeEnvoy(server);
  });
  after(async () => {
    envoy.close();
    await server.close();
    await double.close();
  });

  /** Starts a login and answers it as Entra would, for a user of `tenant`. */
  async function loginAs(browser: AppBrowser, tenant: string) {
    const start = await browser.request(`${origin}/inbox`);
    const authorize = new URL(deniedHeader(start, 'location')!);
    assert.equal(authorize.origin + authorize.pathname, `${double.origin}/authorize`);
    double.nextIdToken = {
      iss: `${double.origin}/${tenant}/v2.0`,
      tid: tenant,
      aud: 'web',
      sub: `user-of-${tenant}`,
      nonce: authorize.searchParams.get('nonce')!,
      email: 'ada@contoso.com',
      xms_edov: true,
    };
    const callback = new URL(authorize.searchParams.get('redirect_uri')!);
    callback.searchParams.set('code', 'c-1');
    callback.searchParams.set('state', authorize.searchParams.get('state')!);
    return browser.request(callback.href);
  }

  it("signs a user of an allowed tenant in, with the tenant's issuer and a verified email", async () => {
    const browser = new AppBrowser(envoy);
    const done = await loginAs(browser, TENANT);
    assert.equal(statusOf(done), 302);
    assert.equal(deniedHeader(done, 'location'), `${origin}/inbox`);
    const allowed = await browser.request(`${origin}/inbox`);
    assert.equal(allowed.kind, 'allow');
    assert.ok(allowed.kind === 'allow');
    assert.equal(allowed.upstream.headers.get('x-auth-request-email'), 'ada@contoso.com');
  });

  it('refuses a user of a tenant not in oidc.tenants', async () => {
    const browser = new AppBrowser(envoy);
    const done = await loginAs(browser, OTHER_TENANT);
    assert.notEqual(statusOf(done), 302);
    assert.notEqual((await browser.request(`${origin}/inbox`)).kind, 'allow');
  });
});
