/**
 * Upgrading to sessions bound to their app: a browser still holding a cookie sealed the old way
 * (keys from the secret alone, the shared `_eoa` name) signs in once more and is then served —
 * one clean re-login, no loop, as the changelog says.
 */
import assert from 'node:assert/strict';
import { createSecretKey, hkdfSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { encodeProtectedHeader, sealCompact } from '../../src/session/compact-jwe.ts';
import { AppBrowser, locationOf, setCookieLines } from '../support/browser.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import type { EnvoyClient } from '../support/envoy-client.ts';
import { scriptedLogin } from '../support/scripted-login.ts';
import {
  signInAppConfig,
  startAppProvider,
  startTestServer,
  testSessionSecret,
  type TestServer,
} from '../support/test-server.ts';

const clientSecret = 'Wq3nB8vK1xP6tR9mL2sD5fH7';
const origin = 'https://grafana.example.com';

/** A session cookie value exactly as the previous release sealed it (v1 derivation, no binding). */
function previousReleaseCookie(now: number): string {
  const ikm = Buffer.from(testSessionSecret, 'utf8');
  const salt = Buffer.from('envoy-oidc-authz session keys', 'utf8');
  const key = Buffer.from(hkdfSync('sha256', ikm, salt, 'envoy-oidc-authz/v1/A256GCM/session', 32));
  const kid = Buffer.from(
    hkdfSync('sha256', ikm, salt, 'envoy-oidc-authz/v1/kid/session', 6),
  ).toString('base64url');
  const session = {
    v: 1,
    id: 'AAAAAAAAAAAAAAAA',
    sub: 'alice',
    claims: { sub: 'alice' },
    tokens: { accessToken: 'old-access-token', expiresAt: now + 3_600_000 },
    createdAt: now,
    lastSeenAt: now,
  };
  return sealCompact(
    createSecretKey(key),
    encodeProtectedHeader(kid),
    Buffer.from(JSON.stringify(session), 'utf8'),
  );
}

describe('upgrading to sessions bound to their app', () => {
  let provider: TestProvider;
  const servers: TestServer[] = [];
  const clients: EnvoyClient[] = [];

  before(async () => {
    provider = await startAppProvider({ name: 'grafana', clientSecret });
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => server.close()));
    await provider.close();
  });

  async function browserFor(session: Record<string, unknown>): Promise<AppBrowser> {
    const server = await startTestServer({
      apps: [
        signInAppConfig(
          { name: 'grafana', clientSecret, oidc: { probeInterval: '1h' }, session },
          provider.issuer,
        ),
      ],
    });
    servers.push(server);
    const envoy = grpcModeEnvoy(server);
    clients.push(envoy);
    return new AppBrowser(envoy);
  }

  for (const [what, session, cookie] of [
    ['the default name (now _eoa_grafana)', {}, '__Host-_eoa_grafana'],
    ['a name pinned to _eoa', { cookieName: '_eoa' }, '__Host-_eoa'],
  ] as const) {
    it(`with ${what}: the old cookie is expired, one login, then served`, async () => {
      const browser = await browserFor(session);
      browser.cookies.set('__Host-_eoa', previousReleaseCookie(Date.now()));

      const first = await browser.request(`${origin}/d/home`);
      assert.equal(first.kind === 'deny' && first.status, 302, 'sent to log in');
      assert.ok(locationOf(first)!.startsWith(`${provider.issuer}/auth?`));
      assert.ok(
        setCookieLines(first).some((l) => l.startsWith('__Host-_eoa=;') && /Max-Age=0/.test(l)),
        'the old cookie is expired',
      );
      assert.equal(browser.cookies.has('__Host-_eoa'), false);

      const authorization = new URL(locationOf(first)!);
      const { callbackUrl } = await scriptedLogin(authorization, { login: 'alice' });
      assert.equal(await browser.finish(callbackUrl), `${origin}/d/home`);
      assert.ok(browser.cookies.has(cookie));

      for (let i = 0; i < 3; i++) {
        const served = await browser.request(`${origin}/d/home`);
        assert.equal(
          served.kind === 'allow' && served.upstream.headers.get('x-auth-request-user'),
          'alice',
          'served after one login, no loop',
        );
        assert.deepEqual(setCookieLines(served), [], 'nothing more to expire');
      }
    });
  }
});
