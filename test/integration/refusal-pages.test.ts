/** Refusal pages from a real server: a rule's 403, a sign-in error and operator templates. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, deniedHeader as header } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import {
  startTestServer,
  testConfig,
  testSessionSecret,
  type TestServer,
} from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();

function app(name: string) {
  return {
    name,
    match: { hosts: [`${name}.example.com`] },
    oidc: {
      issuer: '',
      clientId: name,
      clientSecret: `${name}-client-secret-long-enough`,
      logoutPath: '/auth/out',
    },
    session: { secrets: [testSessionSecret] },
    authorization: { requireGroups: ['finance'] },
  };
}

const bodyOf = (outcome: Outcome): string => (outcome.kind === 'deny' ? outcome.body : '');

describe('refusal pages from a real server', () => {
  let provider: TestProvider;
  let plain: TestServer;
  let branded: TestServer;
  let plainEnvoy: EnvoyClient;
  let brandedEnvoy: EnvoyClient;
  const dir = mkdtempSync(join(tmpdir(), 'eoa-templates-'));

  before(async () => {
    provider = await startTestProvider({
      clients: ['books', 'shop'].map((name) => ({
        clientId: name,
        clientSecret: `${name}-client-secret-long-enough`,
        redirectUris: [`https://${name}.example.com/oauth2/callback`],
      })),
      users: [{ sub: 'alice', email: 'alice@example.com', emailVerified: true, groups: ['users'] }],
    });
    const withIssuer = (name: string) => {
      const config = app(name);
      return { ...config, oidc: { ...config.oidc, issuer: provider.issuer } };
    };
    writeFileSync(
      join(dir, '403.html'),
      '<!doctype html><title>{{title}} · Shop</title><h1>{{title}}</h1><p>{{message}}</p><a href="{{logoutUrl}}">switch</a><p>ref {{requestId}}</p>',
    );
    writeFileSync(join(dir, 'error.html'), '<p>shop: {{title}} [{{retryUrl}}]</p>');
    plain = await startTestServer({ apps: [withIssuer('books')] });
    branded = await startTestServer({
      apps: [withIssuer('shop')],
      pages: { templatesDir: dir },
    });
    plainEnvoy = new EnvoyClient({ target: plain.grpcTarget, protos, timeoutMs: 5_000 });
    brandedEnvoy = new EnvoyClient({ target: branded.grpcTarget, protos, timeoutMs: 5_000 });
  });

  after(async () => {
    plainEnvoy.close();
    brandedEnvoy.close();
    await plain.close();
    await branded.close();
    await provider.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a rule refusing a signed-in user: a page with a sign-out link for the browser, JSON for fetch()', async () => {
    const user = new AppBrowser(plainEnvoy);
    await user.login('https://books.example.com/ledger');
    const page = await user.request('https://books.example.com/ledger');
    assert.equal(page.kind === 'deny' && page.status, 403);
    assert.equal(header(page, 'content-type'), 'text/html; charset=utf-8');
    assert.match(bodyOf(page), /<title>Access denied<\/title>/);
    assert.match(bodyOf(page), /<a href="\/auth\/out">sign out and switch account<\/a>/);
    assert.match(bodyOf(page), /Reference: <code>[^<]+<\/code>/);
    const api = await user.request('https://books.example.com/api/ledger', {
      navigate: false,
      headers: [
        ['accept', '*/*'],
        ['sec-fetch-mode', 'cors'],
      ],
    });
    assert.equal(api.kind === 'deny' && api.status, 403);
    assert.equal(header(api, 'content-type'), 'application/json');
    assert.deepEqual(JSON.parse(bodyOf(api)), {
      error: 'forbidden',
      message: 'not in a required group',
    });
  });

  it('a sign-in the provider refused starts again at the page the user wanted', async () => {
    const user = new AppBrowser(plainEnvoy);
    const { callbackUrl } = await user.startAndAuthenticate(
      'https://books.example.com/reports?year=2026',
    );
    const state = callbackUrl.searchParams.get('state') ?? '';
    const refused = await user.request(
      `https://books.example.com/oauth2/callback?error=access_denied&state=${encodeURIComponent(state)}`,
    );
    assert.equal(refused.kind === 'deny' && refused.status, 401);
    assert.match(bodyOf(refused), /<title>Sign-in was not completed<\/title>/);
    assert.match(
      bodyOf(refused),
      /<a href="https:\/\/books\.example\.com\/reports\?year=2026">Start again<\/a>/,
    );
  });

  it("serves the operator's templates, values escaped; error.html for other statuses", async () => {
    const user = new AppBrowser(brandedEnvoy);
    await user.login('https://shop.example.com/');
    const page = await user.request('https://shop.example.com/');
    assert.equal(page.kind === 'deny' && page.status, 403);
    assert.match(
      bodyOf(page),
      /^<!doctype html><title>Access denied · Shop<\/title><h1>Access denied<\/h1><p>not in a required group<\/p><a href="\/auth\/out">switch<\/a><p>ref [^<]+<\/p>$/,
    );
    const bad = await user.request('https://shop.example.com/a/%zz');
    assert.equal(bad.kind === 'deny' && bad.status, 400);
    assert.equal(bodyOf(bad), '<p>shop: Bad request []</p>');
  });

  it('reads the templates again on reload', async () => {
    const user = new AppBrowser(brandedEnvoy);
    await user.login('https://shop.example.com/');
    writeFileSync(join(dir, '403.html'), '<p>new {{title}}</p>');
    const shop = app('shop');
    branded.handle.reload(
      testConfig({
        apps: [{ ...shop, oidc: { ...shop.oidc, issuer: provider.issuer } }],
        pages: { templatesDir: dir },
      }),
    );
    const page = await user.request('https://shop.example.com/');
    assert.equal(bodyOf(page), '<p>new Access denied</p>');
  });
});
