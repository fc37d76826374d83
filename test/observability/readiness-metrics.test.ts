/** `eoa_ready` per component on a real server: config, each app's discovery, the store. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import { startTestServer, testApp, type TestServer } from '../support/test-server.ts';

/** The `eoa_ready` values by component, as scraped. */
async function readiness(server: TestServer): Promise<Map<string, number>> {
  const text = await (await fetch(`${server.adminBase}/metrics`)).text();
  const ready = new Map<string, number>();
  for (const match of text.matchAll(/^eoa_ready\{component="([^"]*)"\} (\d+)$/gm))
    ready.set(match[1]!, Number(match[2]));
  return ready;
}

function app(name: string, issuer: string): Record<string, unknown> {
  return testApp(
    name,
    {
      match: { hosts: [`${name}.example.com`] },
      oidc: { issuer, clientId: name, clientSecret: 'client-secret', probeInterval: '200ms' },
    },
    issuer,
  );
}

describe('eoa_ready with discovery down', () => {
  let provider: TestProvider;
  let server: TestServer;

  before(async () => {
    provider = await startTestProvider({ clients: [] });
    await provider.stop();
    server = await startTestServer(
      { apps: [app('web', provider.issuer)], breakers: { idp: { resetTimeout: '300ms' } } },
      { waitReady: false },
    );
  });
  after(async () => {
    await server.close();
    await provider.close();
  });

  it('reports 0 for the app whose provider never answered, 1 once it does, 0 when it stops again', async () => {
    const start = await readiness(server);
    assert.equal(start.get('config'), 1);
    assert.equal(start.get('discovery:web'), 0);
    assert.equal(start.has('store'), false, 'no store component for the memory store');
    await provider.start();
    await waitFor(
      'discovery:web ready',
      async () => (await readiness(server)).get('discovery:web') === 1,
    );
    await provider.stop();
    await waitFor(
      'discovery:web not ready after the provider stopped',
      async () => (await readiness(server)).get('discovery:web') === 0,
    );
    assert.equal((await readiness(server)).get('config'), 1);
  });
});

describe('eoa_ready with the store down', () => {
  let provider: TestProvider;
  let redis: RedisProcess;
  let server: TestServer;

  before(async () => {
    provider = await startTestProvider({ clients: [] });
    redis = await startRedis();
    server = await startTestServer({
      apps: [app('web', provider.issuer), app('api', provider.issuer)],
      store: { type: 'redis', redis: { url: redis.url, commandTimeout: '500ms' } },
    });
  });
  after(async () => {
    await server.close();
    await redis.stop();
    await provider.close();
  });

  it('reports each app and the store, the store 0 while redis-server is killed', async () => {
    assert.deepEqual([...(await readiness(server))].sort(), [
      ['config', 1],
      ['discovery:api', 1],
      ['discovery:web', 1],
      ['store', 1],
    ]);
    await redis.kill();
    await waitFor('store not ready', async () => (await readiness(server)).get('store') === 0);
    assert.equal((await readiness(server)).get('discovery:web'), 1, 'the provider is up');
    await redis.restart();
    await waitFor('store ready again', async () => (await readiness(server)).get('store') === 1);
  });
});

describe('eoa_ready with the store credentials wrong', () => {
  let provider: TestProvider;
  let redis: RedisProcess;
  let server: TestServer;

  before(async () => {
    provider = await startTestProvider({ clients: [] });
    redis = await startRedis({ args: ['--requirepass', 'Kp7-right-Xw2-password'] });
    server = await startTestServer(
      {
        apps: [app('web', provider.issuer)],
        store: {
          type: 'redis',
          redis: { url: `redis://:Qm4-wrong-Zt9-password@127.0.0.1:${redis.port}` },
        },
      },
      { waitReady: false },
    );
  });
  after(async () => {
    await server.close();
    await redis.stop();
    await provider.close();
  });

  it('reports the store 0 while Redis refuses the password', async () => {
    await waitFor(
      'discovery:web ready',
      async () => (await readiness(server)).get('discovery:web') === 1,
    );
    const ready = await readiness(server);
    assert.equal(ready.get('store'), 0);
    assert.equal(ready.get('config'), 1);
  });
});
