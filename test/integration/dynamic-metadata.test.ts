/** `dynamicMetadata`: a session's or token's identity in the CheckResponse's dynamic_metadata, as Envoy's protos decode it. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser } from '../support/browser.ts';
import { EnvoyClient, HttpModeClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos, type UpstreamCheckResponse } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const web = 'https://web.example.com';
const clientSecret = 'dynamic-metadata-client-secret-long-enough';

/** What Envoy files under `envoy.filters.http.ext_authz`: every string field of the Struct. */
function metadataOf(outcome: Outcome): Record<string, string> {
  assert.notEqual(outcome.kind, 'error');
  const response = (outcome as { response?: UpstreamCheckResponse }).response;
  const fields = response?.dynamic_metadata?.fields ?? {};
  return Object.fromEntries(
    Object.entries(fields).map(([key, value]) => {
      assert.equal(value.kind ?? 'stringValue', 'stringValue', `${key} is a string value`);
      return [key, value.stringValue ?? ''];
    }),
  );
}

describe('dynamicMetadata', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      clients: [{ clientId: 'web', clientSecret, redirectUris: [`${web}/oauth2/callback`] }],
      users: [
        {
          sub: 'zoë',
          email: 'zoë@exämple.com',
          emailVerified: true,
          name: 'Zoë Ünïcödé 山田',
          groups: ['admins', 'ops'],
        },
        { sub: 'mallory', email: 'mallory@example.com', groups: ['x,admins', 'ok'] },
      ],
    });
    server = await startTestServer({
      apps: [
        {
          name: 'web',
          match: { hosts: ['web.example.com'] },
          oidc: { issuer: provider.issuer, clientId: 'web', clientSecret },
          session: { secrets: [testSessionSecret] },
          bearer: { enabled: true, audiences: ['https://api.example.com'] },
          publicPaths: [{ prefix: '/public/' }],
          dynamicMetadata: {
            user: '{{ claims.sub }}',
            name: '{{ claims.name }}',
            groups: '{{ claims.groups }}',
            auth_method: '{{ auth.method }}',
            client_id: '{{ auth.client_id }}',
            label: '{{ app.name }}/{{ auth.method }}',
            missing: '{{ claims.no_such_claim }}',
          },
        },
      ],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it("carries a session's identity, non-ASCII intact, beside reason and app", async () => {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`, 'zoë');
    const cookie = browser.cookieHeader()!;
    const first = await envoy.check({ url: `${web}/x`, headers: [['cookie', cookie]] });
    assert.equal(first.kind, 'allow');
    assert.deepEqual(metadataOf(first), {
      reason: 'session',
      app: 'web',
      user: 'zoë',
      name: 'Zoë Ünïcödé 山田',
      groups: 'admins,ops',
      auth_method: 'session',
      client_id: 'web',
      label: 'web/session',
    });
    // A hot session hands out its kept allow: the metadata comes with it, unchanged.
    const again = await envoy.check({ url: `${web}/y`, headers: [['cookie', cookie]] });
    assert.deepEqual(metadataOf(again), metadataOf(first));
  });

  it('leaves out a value that would read as another group list, not the others', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`, 'mallory');
    const outcome = await envoy.check({
      url: `${web}/x`,
      headers: [['cookie', browser.cookieHeader()!]],
    });
    const metadata = metadataOf(outcome);
    assert.equal(metadata['groups'], undefined, 'a group named "x,admins" is never joined');
    assert.equal(metadata['user'], 'mallory');
  });

  it("carries a bearer caller's client id (azp, else client_id)", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const sign = (claims: Record<string, unknown>) =>
      provider.signJwt({ aud: 'https://api.example.com', exp, ...claims }, { typ: 'at+jwt' });
    const withClientId = await envoy.check({
      url: `${web}/api`,
      headers: [['authorization', `Bearer ${await sign({ sub: 'svc', client_id: 'ci-runner' })}`]],
    });
    assert.equal(withClientId.kind, 'allow');
    assert.deepEqual(metadataOf(withClientId), {
      reason: 'bearer',
      app: 'web',
      user: 'svc',
      auth_method: 'bearer',
      client_id: 'ci-runner',
      label: 'web/bearer',
    });
    const withAzp = await envoy.check({
      url: `${web}/api`,
      headers: [
        [
          'authorization',
          `Bearer ${await sign({ sub: 'svc2', azp: 'reports', client_id: 'ignored' })}`,
        ],
      ],
    });
    assert.equal(metadataOf(withAzp)['client_id'], 'reports');
  });

  it('gives public paths and refusals no identity', async () => {
    const open = await envoy.check({ url: `${web}/public/a.css` });
    assert.deepEqual(metadataOf(open), { reason: 'public_path', app: 'web' });
    const refused = await envoy.check({
      url: `${web}/x`,
      headers: [['accept', 'application/json']],
    });
    assert.deepEqual(metadataOf(refused), { reason: 'unauthenticated', app: 'web' });
  });

  it('sends nothing of it in HTTP mode, which has no metadata', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`, 'zoë');
    const http = new HttpModeClient({
      baseUrl: server.httpBase,
      allowedHeaders: ['cookie'],
      timeoutMs: 5_000,
    });
    try {
      const outcome = await http.check({
        url: `${web}/x`,
        headers: [['cookie', browser.cookieHeader()!]],
      });
      assert.equal(outcome.kind, 'allow');
      const names = outcome.kind === 'allow' ? outcome.authzResponse?.headers.map(([n]) => n) : [];
      assert.ok(!names?.some((name) => /auth_method|client_id/.test(name)));
    } finally {
      http.close();
    }
  });
});
