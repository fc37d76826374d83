import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { clientCredentialsToken } from '../support/bearer-providers.ts';
import { bothModes, type EnvoyMode } from '../support/both-modes.ts';
import { deniedHeader, setCookieLines, statusOf } from '../support/browser.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';
const origin = 'https://api.example.com';
const machine = { id: 'machine', secret: 'machine-client-secret-long-enough' };

const navigation: [string, string][] = [
  ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['sec-fetch-mode', 'navigate'],
  ['user-agent', 'Mozilla/5.0 (scripted)'],
];

describe('an API-only app: bearer tokens from a real provider, no client, no session secret', () => {
  let provider: TestProvider;
  let server: TestServer;
  let modes: EnvoyMode[];

  before(async () => {
    provider = await startTestProvider({
      defaultResource: API,
      clients: [
        {
          clientId: machine.id,
          clientSecret: machine.secret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
        },
      ],
    });
    server = await startTestServer({
      apps: [
        {
          name: 'api',
          match: { hosts: ['api.example.com'] },
          oidc: { issuer: provider.issuer },
          bearer: { enabled: true, audiences: [API], requiredScopes: ['api:read'] },
        },
      ],
    });
    modes = bothModes(server);
  });

  after(async () => {
    for (const mode of modes) mode.close();
    await server.close();
    await provider.close();
  });

  it('allows a client-credentials JWT access token, in every mode', async () => {
    const token = await clientCredentialsToken(provider, machine, {
      resource: API,
      scope: 'api:read',
    });
    for (const { name, envoy } of modes) {
      const outcome = await envoy.check({
        url: `${origin}/v1/items`,
        headers: [['authorization', `Bearer ${token}`]],
      });
      assert.equal(outcome.kind, 'allow', `${name}: ${JSON.stringify(outcome)}`);
      assert.ok(outcome.kind === 'allow');
      assert.equal(outcome.upstream.headers.get('x-auth-request-user'), machine.id, name);
      assert.deepEqual(setCookieLines(outcome), [], name);
    }
  });

  it('answers a browser navigation without a token with a 401 page, never a redirect', async () => {
    for (const { name, envoy } of modes) {
      const outcome = await envoy.check({ url: `${origin}/dashboard`, headers: navigation });
      assert.equal(statusOf(outcome), 401, name);
      assert.equal(deniedHeader(outcome, 'location'), undefined, name);
      assert.equal(deniedHeader(outcome, 'www-authenticate'), 'Bearer realm="api"', name);
      assert.equal(deniedHeader(outcome, 'content-type'), 'text/html; charset=utf-8', name);
      assert.match(outcome.kind === 'deny' ? outcome.body : '', /bearer tokens only/, name);
      assert.deepEqual(setCookieLines(outcome), [], name);
    }
  });

  it('answers an API call without a token with 401 JSON and a Bearer challenge', async () => {
    for (const { name, envoy } of modes) {
      const outcome = await envoy.check({
        url: `${origin}/v1/items`,
        headers: [['accept', 'application/json']],
      });
      assert.equal(statusOf(outcome), 401, name);
      assert.equal(deniedHeader(outcome, 'www-authenticate'), 'Bearer realm="api"', name);
      assert.deepEqual(JSON.parse(outcome.kind === 'deny' ? outcome.body : '{}'), {
        error: 'unauthenticated',
        message: 'authentication required',
      });
    }
  });

  it('has no callback or logout path, and reads and writes no session cookie', async () => {
    const [{ envoy }] = modes as [EnvoyMode];
    // What a login app would answer itself reaches this one as any path: 401 without a token.
    for (const path of ['/oauth2/callback?code=c&state=s', '/oauth2/logout']) {
      const outcome = await envoy.check({
        url: `${origin}${path}`,
        headers: [...navigation, ['cookie', '__Host-_eoa_api=forged; _eoa_api_login_x=y']],
      });
      assert.equal(statusOf(outcome), 401, path);
      assert.equal(deniedHeader(outcome, 'location'), undefined, path);
      assert.deepEqual(setCookieLines(outcome), [], path);
    }
    // With a token, a cookie of our names is not ours to read: it is neither decoded, expired
    // nor removed.
    const token = await clientCredentialsToken(provider, machine, {
      resource: API,
      scope: 'api:read',
    });
    const outcome = await envoy.check({
      url: `${origin}/v1/items`,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['cookie', '__Host-_eoa_api=whatever; theme=dark'],
      ],
    });
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    assert.deepEqual(setCookieLines(outcome), []);
  });

  it('refuses a token without the required scope, and a forged one, with 401/403 as any bearer app', async () => {
    const [{ envoy }] = modes as [EnvoyMode];
    const unscoped = await clientCredentialsToken(provider, machine, {
      resource: API,
      scope: 'api:write',
    });
    const call = (token: string) =>
      envoy.check({
        url: `${origin}/v1/items`,
        headers: [...navigation, ['authorization', `Bearer ${token}`]],
      });
    assert.equal(statusOf(await call(unscoped)), 403);
    const forged = `${unscoped.slice(0, unscoped.lastIndexOf('.'))}.AAAA`;
    const refused = await call(forged);
    assert.equal(statusOf(refused), 401);
    assert.equal(deniedHeader(refused, 'location'), undefined);
  });
});
