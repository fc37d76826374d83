/**
 * Users whose names are not Latin-1 sign in through a real OpenID Provider and are served in
 * both Envoy modes, their identity headers the same UTF-8 bytes in each. Before, "Łukasz" made
 * HTTP mode's `writeHead` throw and the process exit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { bothModes, modeNames, type EnvoyMode } from '../support/both-modes.ts';
import { AppBrowser } from '../support/browser.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';

const origin = 'https://wiki.example.com';
const clientSecret = 'wiki-client-secret-long-enough';

/** Each user: their sign-in name and the claims rendered into identity headers. */
const users = [
  { sub: 'lukasz', name: 'Łukasz Żółć', username: 'Łukasz', group: 'Zespół' },
  { sub: 'dmitry', name: 'Дмитрий Иванов', username: 'Дмитрий', group: 'Администраторы' },
  { sub: 'unicorn', name: 'Uni 🦄 Corn', username: '🦄', group: '🚀 launch' },
  { sub: 'yamada', name: '山田太郎', username: '太郎', group: '開発者' },
  { sub: 'jose', name: 'José Müller', username: 'josé', group: 'Straße' },
] as const;

describe('identity headers of users with non-Latin-1 names, in both modes', () => {
  let provider: TestProvider;
  let server: TestServer;
  let modes: EnvoyMode[];

  before(async () => {
    ({ provider, server } = await startAppStack({
      name: 'wiki',
      clientSecret,
      provider: {
        users: users.map((user) => ({
          sub: user.sub,
          email: `${user.sub}@example.com`,
          emailVerified: true,
          name: user.name,
          preferredUsername: user.username,
          groups: [user.group, 'users'],
        })),
      },
      oidc: { scopes: ['openid', 'profile', 'email'] },
      app: { upstreamHeaders: { 'x-auth-request-name': '{{ claims.name }}' } },
    }));
    modes = bothModes(server);
  });

  after(async () => {
    for (const mode of modes) mode.close();
    await server.close();
    await provider.close();
  });

  for (const user of users) {
    it(`signs in ${user.username} and serves the same headers in gRPC and HTTP mode`, async () => {
      const seen: Record<string, string | undefined>[] = [];
      for (const mode of modes) {
        const browser = new AppBrowser(mode.envoy);
        const landed = await browser.login(`${origin}/page`, user.sub);
        assert.equal(landed, `${origin}/page`, `${mode.name}: back where the login started`);
        // Twice: the second request is served from the session caches.
        for (let round = 0; round < 2; round++) {
          const served = await browser.request(`${origin}/page`);
          assert.equal(served.kind, 'allow', `${mode.name}: served`);
          if (served.kind !== 'allow') return;
          const headers = served.upstream.headers;
          assert.equal(headers.get('x-auth-request-preferred-username'), user.username);
          assert.equal(headers.get('x-auth-request-name'), user.name);
          assert.equal(headers.get('x-auth-request-groups'), `${user.group},users`);
          seen.push(Object.fromEntries([...headers].filter(([n]) => n.startsWith('x-auth-'))));
        }
      }
      assert.equal(seen.length, 2 * modeNames.length, 'two requests in every mode');
      for (const other of seen.slice(1)) {
        assert.deepEqual(other, seen[0], 'HTTP mode sends what gRPC mode sends');
      }
    });
  }

  it('writes the UTF-8 bytes of a value in HTTP mode, as gRPC mode does', async () => {
    const http = modes.find((mode) => mode.name.startsWith('http'))!;
    const browser = new AppBrowser(http.envoy);
    await browser.login(`${origin}/`, 'lukasz');
    const served = await browser.request(`${origin}/`);
    assert.ok(served.kind === 'allow' && served.authzResponse !== undefined);
    const line = served.authzResponse.headers.find(([n]) => n === 'x-auth-request-name');
    // The client reads the bytes back as UTF-8 only when they are UTF-8.
    assert.equal(line?.[1], 'Łukasz Żółć');
  });
});
