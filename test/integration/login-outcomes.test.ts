/**
 * `eoa_logins_total{app, outcome}` on a real server and a real OpenID Provider: a completed login
 * and each class of failed callback is counted once, under its own cause, and the `verdict` label
 * tells the login redirect and the completed callback from a refusal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, statusOf } from '../support/browser.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { signInAppConfig, startTestServer, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const clientSecret = 'login-outcomes-client-secret';

/** The `eoa_logins_total` values of `app`, by outcome. */
async function logins(server: TestServer, app: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${server.adminBase}/metrics`)).text();
  const counts: Record<string, number> = {};
  const pattern = new RegExp(
    `^eoa_logins_total\\{app="${app}",outcome="([a-z_]+)"\\} (\\d+)$`,
    'gm',
  );
  for (const match of text.matchAll(pattern)) {
    const value = Number(match[2]);
    if (value > 0) counts[match[1]!] = value;
  }
  return counts;
}

describe('eoa_logins_total', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      clients: ['web', 'wrong'].map((name) => ({
        clientId: name,
        clientSecret,
        redirectUris: [`https://${name}.example.com/oauth2/callback`],
      })),
    });
    server = await startTestServer({
      apps: [
        signInAppConfig(
          { name: 'web', clientSecret, oidc: { probeInterval: '1h' } },
          provider.issuer,
        ),
        // The commonest first-deploy mistake: a client secret that is not the provider's.
        signInAppConfig(
          {
            name: 'wrong',
            clientSecret: 'not-the-secret-the-provider-has',
            oidc: { probeInterval: '1h' },
          },
          provider.issuer,
        ),
      ],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('counts a completed login as ok, and labels its Checks login and callback', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login('https://web.example.com/reports');
    assert.deepEqual(await logins(server, 'web'), { ok: 1 });
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    assert.match(text, /eoa_checks_total\{app="web",verdict="login",reason="login"\} 1\n/);
    assert.match(text, /eoa_checks_total\{app="web",verdict="callback",reason="callback"\} 1\n/);
  });

  it('counts each failed callback once under its cause', async () => {
    const before = await logins(server, 'web');
    const browser = new AppBrowser(envoy);
    // No login state in this browser: an attacker's or a stale link.
    const stateless = await browser.request(
      'https://web.example.com/oauth2/callback?code=x&state=y',
    );
    assert.equal(statusOf(stateless), 400);
    // The provider refused, with an attacker-chosen description that must not matter.
    const refused = await browser.request(
      `https://web.example.com/oauth2/callback?error=access_denied&error_description=${encodeURIComponent('é\r\n<x>'.repeat(50))}`,
    );
    assert.equal(statusOf(refused), 401);
    const unknown = await browser.request(
      `https://web.example.com/oauth2/callback?error=${'x'.repeat(5_000)}`,
    );
    assert.equal(statusOf(unknown), 401);
    assert.deepEqual(await logins(server, 'web'), { ...before, state: 1, provider_refused: 2 });
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    assert.match(text, /eoa_checks_total\{app="web",verdict="deny",reason="callback"\} 1\n/);
    assert.match(text, /eoa_checks_total\{app="web",verdict="deny",reason="callback_error"\} 2\n/);
  });

  it('counts a code the token endpoint refuses (wrong client secret) as token_refused', async () => {
    const browser = new AppBrowser(envoy);
    const { callbackUrl } = await browser.startAndAuthenticate('https://wrong.example.com/');
    const answer = await browser.request(callbackUrl.href);
    assert.equal(statusOf(answer), 401);
    assert.deepEqual(await logins(server, 'wrong'), { token_refused: 1 });
  });

  it('counts a provider outage at the token endpoint as provider_unavailable', async () => {
    const before = await logins(server, 'web');
    const browser = new AppBrowser(envoy);
    const { callbackUrl } = await browser.startAndAuthenticate('https://web.example.com/x');
    provider.injectFault({ target: 'token', status: 503, count: 1 });
    const answer = await browser.request(callbackUrl.href);
    assert.equal(statusOf(answer), 503);
    assert.deepEqual(await logins(server, 'web'), {
      ...before,
      provider_unavailable: (before['provider_unavailable'] ?? 0) + 1,
    });
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    assert.match(
      text,
      /eoa_checks_total\{app="web",verdict="unavailable",reason="unavailable"\} 1\n/,
    );
    assert.doesNotMatch(text, /app="-"/, 'every Check here matched an app');
  });
});
