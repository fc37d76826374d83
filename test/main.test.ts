/** The composition root builds each app's sessions from `session.store`, at start and on reload. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startServer } from '../src/main.ts';
import type { TestProvider } from '../dev/test-provider.ts';
import { grpcModeEnvoy } from './support/both-modes.ts';
import { AppBrowser } from './support/browser.ts';
import type { EnvoyClient } from './support/envoy-client.ts';
import { startTestProvider } from '../dev/test-provider.ts';
import { captureLog } from './resilience/log-capture.ts';
import {
  signInAppConfig,
  startAppStack,
  startTestServer,
  testApp,
  testConfig,
  type SignInApp,
  type TestServer,
} from './support/test-server.ts';

const origin = 'https://grafana.example.com';
const cookieName = '__Host-_eoa_grafana';
/** What only server sessions put in the cookie: `<id>.<key>`, base64url. */
const TICKET = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;
/** What only cookie sessions put there: the whole session, a compact JWE (five parts). */
const SEALED = /^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const app = (store: 'cookie' | 'server'): SignInApp => ({
  name: 'grafana',
  clientSecret: 'grafana-client-secret-long-enough',
  oidc: { probeInterval: '1h' },
  session: { store },
});

describe('sessions chosen by session.store', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    ({ provider, server } = await startAppStack(app('cookie')));
    envoy = grpcModeEnvoy(server);
  });
  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  /** Logs alice in and checks she is served; returns her browser. */
  async function signedIn(): Promise<AppBrowser> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${origin}/`);
    const outcome = await browser.request(`${origin}/api`, { navigate: false });
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      'alice',
    );
    return browser;
  }

  it('cookie: the session is sealed in the cookie; server (after a reload): a ticket', async () => {
    const sealed = await signedIn();
    assert.match(sealed.cookies.get(cookieName) ?? '', SEALED);

    server.handle.reload(testConfig({ apps: [signInAppConfig(app('server'), provider.issuer)] }));
    const ticketed = await signedIn();
    assert.match(ticketed.cookies.get(cookieName) ?? '', TICKET);
    // A sealed session is no ticket to the server sessions now in charge.
    const refused = await sealed.request(`${origin}/api`, { navigate: false });
    assert.equal(refused.kind === 'deny' && refused.status, 401);
  });
});

describe('a reload while shutting down', () => {
  it('is ignored with one warning: no provider or probe starts after close()', async () => {
    const provider = await startTestProvider({
      clients: [{ clientId: 'grafana', clientSecret: 'x'.repeat(32), redirectUris: [] }],
    });
    const log = captureLog();
    const grafana = {
      name: 'grafana',
      clientSecret: 'x'.repeat(32),
      oidc: { probeInterval: '1h' },
    };
    const document = {
      apps: [signInAppConfig(grafana, provider.issuer)],
      shutdown: { drainDelay: '1h' },
    };
    const server = await startTestServer(document, { logger: log.logger });
    const closed = server.handle.close();
    try {
      const discoveries = provider.counters().discovery;
      server.handle.reload(testConfig(document));
      assert.equal(log.matching(/reload ignored: the server is shutting down/).length, 1);
      assert.equal(log.matching(/configuration reloaded/).length, 0);
      assert.equal(provider.counters().discovery, discoveries, 'no new provider was started');
    } finally {
      await server.handle.close(); // a second close cuts the delay short
      await closed;
      await provider.close();
    }
  });
});

describe('a reload applies log, breakers and shutdown', () => {
  it('changes the level of every logger, retunes breakers, and names what needs a restart', async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        for (const line of chunk.toString().split('\n')) {
          if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    const document = (overrides: Record<string, unknown>) => ({
      apps: [testApp('grafana')],
      ...overrides,
    });
    const handle = await startServer(
      testConfig(document({ log: { level: 'warn' }, shutdown: { drainDelay: '1h' } })),
      { logDestination: destination },
    );
    let closing: Promise<void> | undefined;
    try {
      // A child made before the reload (every component keeps one) must follow the new level.
      const child = handle.logger.child({ component: 'before-reload' });
      assert.equal(child.isLevelEnabled('debug'), false);
      handle.reload(
        testConfig(
          document({
            log: { level: 'debug', access: { enabled: true } },
            shutdown: { drainDelay: '0s', drainTimeout: '2s' },
            breakers: { store: { resetTimeout: '3s', volumeThreshold: 9 } },
          }),
        ),
      );
      assert.equal(handle.logger.level, 'debug');
      assert.equal(child.isLevelEnabled('debug'), true, 'children follow the new level');
      const changed = lines.find((line) => line['msg'] === 'log level changed');
      assert.equal(changed?.['level'], 'info');
      assert.equal(changed?.['logLevel'], 'debug');
      const restart = lines.find((line) => /change only on restart/.test(String(line['msg'])));
      assert.equal(restart?.['level'], 'warn');
      assert.deepEqual(restart?.['keys'], ['breakers.store.volumeThreshold']);
      const access = lines.find((line) => line['msg'] === 'log.access changes only on restart');
      assert.equal(access?.['level'], 'warn');

      // The new drain delay (0s, not the 1h the server started with) is the one close() keeps.
      closing = handle.close();
      const draining = lines.find((line) => line['msg'] === 'draining');
      assert.equal(draining?.['drainDelayMs'], 0);
      assert.equal(draining?.['drainTimeoutMs'], 2_000);
      await closing;
    } finally {
      if (closing === undefined) await handle.close();
      await handle.close();
    }
  });
});
