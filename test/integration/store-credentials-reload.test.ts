/**
 * Rotating the Redis password: a new secret file and a reload move the server to a connection
 * with the new password without failing a Check; a password Redis refuses is an outage that
 * readiness and the metrics show.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import type { HealthStatus } from '../../src/server/health-state.ts';
import { ServingStatus } from '../../src/server/protos.ts';
import { AppBrowser } from '../support/browser.ts';
import { EnvoyClient, type Outcome } from '../support/envoy-client.ts';
import { spawnServer } from '../support/server-process.ts';
import { redisCli, startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import {
  startTestServer,
  testConfig,
  testSessionSecret,
  type TestServer,
} from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';
import { captureLog } from '../resilience/log-capture.ts';

const protos = loadUpstreamProtos();
const origin = 'https://wiki.example.com';
const clientSecret = 'wiki-client-secret-long-enough';
const OLD_PASSWORD = 'Tq8vKz3mRw7nLp2xHs5d';
const NEW_PASSWORD = 'Yb4cNf9gJe6tUa1kWq0z';
const OTHER_PASSWORD = 'Rd6wQj1uBn8yFk4aZs3m';
const WRONG_PASSWORD = 'Mx2rPv7sDl5hGo3iCy8e';
const FOURTH_PASSWORD = 'Hc5jVt2oEx9bSn6wAq4f';

async function metricsText(server: TestServer): Promise<string> {
  return (await fetch(`${server.adminBase}/metrics`)).text();
}

/** One browser's Checks back to back until stopped; `stop` gives those not allowed. */
function steadyChecks(browser: AppBrowser): {
  more(n: number, what: string): Promise<void>;
  stop(): Promise<Outcome[]>;
} {
  const failures: Outcome[] = [];
  let checks = 0;
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      const outcome = await browser.request(`${origin}/page`);
      checks += 1;
      if (outcome.kind !== 'allow') failures.push(outcome);
    }
  })();
  return {
    async more(n, what) {
      const from = checks;
      await waitFor(what, () => checks >= from + n);
    },
    async stop() {
      stopped = true;
      await running;
      return failures;
    },
  };
}
describe('store credentials on reload', () => {
  let redis: RedisProcess;
  let provider: TestProvider;
  let dir: string;
  let passwordFile: string;

  const document = () => ({
    store: {
      type: 'redis',
      redis: { url: redis.url, passwordFile, commandTimeout: '3s' },
    },
    // Store calls get 2 s (half the budget): a reconnection on a busy machine can take a second,
    // and here only a refused password may fail a Check, not a slow one.
    request: { budget: '4s' },
    breakers: { store: { volumeThreshold: 2, rollingWindow: '2s', resetTimeout: '1s' } },
    apps: [
      {
        name: 'wiki',
        match: { hosts: ['wiki.example.com'] },
        oidc: { issuer: provider.issuer, clientId: 'wiki', clientSecret },
        // Server sessions: every Check reads the store, and the store is mandatory.
        session: { store: 'server', secrets: [testSessionSecret] },
      },
    ],
  });

  before(async () => {
    redis = await startRedis({ args: ['--requirepass', OLD_PASSWORD] });
    provider = await startTestProvider({
      clients: [{ clientId: 'wiki', clientSecret, redirectUris: [`${origin}/oauth2/callback`] }],
    });
    dir = await mkdtemp(join(tmpdir(), 'eoa-store-reload-'));
    passwordFile = join(dir, 'redis-password');
  });

  after(async () => {
    await provider.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('rotates the password by file and reload with no failed Check', async () => {
    await redisCli(
      redis.port,
      '-a',
      OLD_PASSWORD,
      '--no-auth-warning',
      'config',
      'set',
      'requirepass',
      OLD_PASSWORD,
    );
    await writeFile(passwordFile, OLD_PASSWORD + '\n');
    const log = captureLog();
    const server = await startTestServer(document(), { logger: log.logger });
    const client = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const browser = new AppBrowser(client);
      await browser.login(`${origin}/`);
      const steady = steadyChecks(browser);
      await steady.more(20, 'steady Checks');

      // The operator's order: Redis takes the new password (connections already made stay
      // authenticated), then the Secret is updated and the server reloads.
      await redisCli(
        redis.port,
        '-a',
        OLD_PASSWORD,
        '--no-auth-warning',
        'config',
        'set',
        'requirepass',
        NEW_PASSWORD,
      );
      await writeFile(passwordFile, NEW_PASSWORD + '\n');
      server.handle.reload(testConfig(document()));
      await waitFor(
        'the switch to the new connection',
        () => log.matching(/store now uses the new settings/).length > 0,
      );
      // Every connection Redis has is dropped: only one with the new password gets back in.
      await redisCli(
        redis.port,
        '-a',
        NEW_PASSWORD,
        '--no-auth-warning',
        'client',
        'kill',
        'type',
        'normal',
      );
      await steady.more(20, 'Checks after every connection was dropped');
      const failures = await steady.stop();

      assert.deepEqual(failures, [], 'no Check failed during the rotation');
      assert.equal(server.handle.health.waiting().length, 0);
      // A call the kill cut short counts as a moment of degradation; with no further store
      // traffic needed (sessions are cached), the store's own probe ends it.
      await waitFor('the store to count as healthy again', async () =>
        /^eoa_store_degraded 0$/m.test(await metricsText(server)),
      );
      assert.equal(log.text().includes(NEW_PASSWORD), false, 'the password is never logged');
      assert.equal(log.text().includes(OLD_PASSWORD), false, 'the password is never logged');
    } finally {
      client.close();
      await server.close();
    }
  });

  it('a password Redis refuses shows in /readyz, the breaker and eoa_store_degraded', async () => {
    // Redis has NEW_PASSWORD since the test above.
    await writeFile(passwordFile, NEW_PASSWORD + '\n');
    const log = captureLog();
    const server = await startTestServer(document(), { logger: log.logger });
    const client = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
    const cli = (password: string, ...args: string[]) =>
      redisCli(redis.port, '-a', password, '--no-auth-warning', ...args);
    try {
      const browser = new AppBrowser(client);
      await browser.login(`${origin}/`);
      const statuses: HealthStatus[] = [];
      server.handle.health.watch((status) => statuses.push(status));
      // Redis's password changes under the server, which then loses its connection.
      await cli(NEW_PASSWORD, 'config', 'set', 'requirepass', OTHER_PASSWORD);
      await cli(OTHER_PASSWORD, 'client', 'kill', 'type', 'normal');
      // gRPC health watchers hear of it at the refusal, before any Check meets it.
      await waitFor('NOT_SERVING from the health watch', () =>
        statuses.includes(ServingStatus.NOT_SERVING),
      );

      // Both read at one instant: on a busy machine a second read may fall in the breaker's
      // half-open probe.
      await waitFor('the store breaker to open and the store to count as degraded', async () => {
        await browser.request(`${origin}/page`);
        const metrics = await metricsText(server);
        return (
          /^eoa_breaker_state\{breaker="store"\} 2$/m.test(metrics) &&
          /^eoa_store_degraded 1$/m.test(metrics)
        );
      });
      const refused = await browser.request(`${origin}/page`);
      assert.equal(refused.kind, 'deny');
      assert.equal(refused.kind === 'deny' ? refused.status : 0, 503);
      const response = await fetch(`${server.adminBase}/readyz`);
      assert.equal(response.status, 503);
      const body = (await response.json()) as { waiting: { name: string; reason: string }[] };
      assert.deepEqual(
        body.waiting.map(({ name }) => name),
        ['store'],
      );
      assert.match(body.waiting[0]!.reason, /^redis refuses the credentials: WRONGPASS/);
      assert.equal(log.matching(/redis refuses the credentials/).length, 1);

      // The fix: the Secret gets the password Redis has, and a reload.
      await writeFile(passwordFile, OTHER_PASSWORD + '\n');
      server.handle.reload(testConfig(document()));
      await waitFor('Checks to be allowed again', async () => {
        return (await browser.request(`${origin}/page`)).kind === 'allow';
      });
      await waitFor('readiness', async () => (await fetch(`${server.adminBase}/readyz`)).ok);
      for (const secret of [NEW_PASSWORD, OTHER_PASSWORD]) {
        assert.equal(log.text().includes(secret), false, 'the password is never logged');
      }
    } finally {
      client.close();
      await server.close();
    }
  });

  it('new credentials Redis refuses leave the working connection in service', async () => {
    // Redis has OTHER_PASSWORD since the test above.
    await writeFile(passwordFile, OTHER_PASSWORD + '\n');
    const log = captureLog();
    const server = await startTestServer(document(), { logger: log.logger });
    const client = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const browser = new AppBrowser(client);
      await browser.login(`${origin}/`);
      await writeFile(passwordFile, WRONG_PASSWORD + '\n');
      server.handle.reload(testConfig(document()));
      await waitFor(
        'the error naming the refused settings',
        () => log.matching(/new store settings do not connect yet/).length > 0,
      );
      const line = log.matching(/new store settings do not connect yet/)[0]!;
      assert.equal(line['level'], 'error');
      assert.match(String(line['error']), /WRONGPASS/);
      for (let i = 0; i < 10; i++) {
        assert.equal((await browser.request(`${origin}/page`)).kind, 'allow');
      }
      assert.equal((await fetch(`${server.adminBase}/readyz`)).status, 200);
      assert.equal(log.text().includes(WRONG_PASSWORD), false, 'the password is never logged');
    } finally {
      client.close();
      await server.close();
    }
  });

  it('the server process rotates by the file watch alone, with no failed Check', async () => {
    // Redis has OTHER_PASSWORD since the tests above.
    await writeFile(passwordFile, OTHER_PASSWORD + '\n');
    const proc = await spawnServer({ ...document(), log: { level: 'info' } });
    const client = new EnvoyClient({ target: proc.grpcTarget, protos, timeoutMs: 5_000 });
    const cli = (password: string, ...args: string[]) =>
      redisCli(redis.port, '-a', password, '--no-auth-warning', ...args);
    try {
      const browser = new AppBrowser(client);
      await browser.login(`${origin}/`);
      const steady = steadyChecks(browser);
      await steady.more(20, 'steady Checks');
      await cli(OTHER_PASSWORD, 'config', 'set', 'requirepass', FOURTH_PASSWORD);
      // No signal: the changed Secret file is noticed by the watch.
      await writeFile(passwordFile, FOURTH_PASSWORD + '\n');
      await waitFor('the switch to the new connection', () =>
        /store now uses the new settings/.test(proc.output()),
      );
      await cli(FOURTH_PASSWORD, 'client', 'kill', 'type', 'normal');
      await steady.more(20, 'Checks after every connection was dropped');
      const failures = await steady.stop();
      assert.deepEqual(failures, [], 'no Check failed during the rotation');
      assert.match(proc.output(), /a secret file changed: reloading the configuration/);
      for (const secret of [OTHER_PASSWORD, FOURTH_PASSWORD]) {
        assert.equal(proc.output().includes(secret), false, 'the password is never logged');
      }
    } finally {
      client.close();
      assert.equal(await proc.stop('SIGTERM'), 0);
    }
  });
});
