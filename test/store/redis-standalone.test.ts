/** The Redis backend against a real standalone redis-server: contracts, keys, faults, recovery. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { isOutage } from '../../src/resilience/outage.ts';
import { ServerSessionStore } from '../../src/session/server-session-store.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import {
  createRedisBackend,
  RedisStoreError,
  type RedisBackend,
  type RedisBackendOptions,
} from '../../src/store/redis-backend.ts';
import { runServerSessionContract } from '../session/server-session-contract.ts';
import { redisCli, startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import { runStoreContract } from './store-contract.ts';

function configFor(url: string, extra: Partial<RedisConfig> = {}): RedisConfig {
  return { url, keyPrefix: `t-${randomUUID()}:`, commandTimeout: 1_000, ...extra };
}

async function connect(
  config: RedisConfig,
  options: Partial<RedisBackendOptions> = {},
): Promise<RedisBackend> {
  const backend = createRedisBackend(config, { logger: silentLogger(), ...options });
  await backend.ready();
  return backend;
}

describe('redis backend, standalone', () => {
  let server: RedisProcess;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  // A fresh key prefix per test is the "empty backend"; the server is shared.
  const makeBackend = async () => {
    const backend = await connect(configFor(server.url));
    return { backend, close: () => backend.close() };
  };
  runStoreContract('redis standalone', makeBackend);
  runServerSessionContract('redis standalone', makeBackend);

  it('stores every key under keyPrefix, with the lifetime given', async () => {
    const config = configFor(server.url);
    const backend = await connect(config);
    try {
      await backend.set('session:app:x', 'v', 60_000);
      await backend.addMember('session-by-sub:app:alice', 'x', 30_000);
      assert.equal(await redisCli(server.port, 'get', `${config.keyPrefix}session:app:x`), 'v');
      assert.equal(await redisCli(server.port, 'exists', 'session:app:x'), '0');
      const pttl = Number(await redisCli(server.port, 'pttl', `${config.keyPrefix}session:app:x`));
      assert.ok(pttl > 59_000 && pttl <= 60_000, `pttl ${pttl}`);
      const setTtl = Number(
        await redisCli(server.port, 'pttl', `${config.keyPrefix}session-by-sub:app:alice`),
      );
      assert.ok(setTtl > 29_000 && setTtl <= 30_000, `set pttl ${setTtl}`);
    } finally {
      await backend.close();
    }
  });

  it('owner-checked scripts still work after the server forgets them (SCRIPT FLUSH)', async () => {
    const backend = await connect(configFor(server.url));
    try {
      await backend.set('lock', 'owner-a', 60_000);
      assert.equal(await backend.expireIfEquals('lock', 'owner-a', 60_000), true);
      assert.equal(await redisCli(server.port, 'script', 'flush'), 'OK');
      assert.equal(await backend.deleteIfEquals('lock', 'owner-a'), true);
      await backend.addMember('idx', 'm', 60_000);
      assert.deepEqual(await backend.members('idx'), ['m']);
    } finally {
      await backend.close();
    }
  });

  it('a failed command reports a stable code and carries none of its arguments', async () => {
    const backend = await connect(configFor(server.url));
    try {
      await backend.addMember('idx', 'member', 60_000);
      const error = await backend.deleteIfEquals('idx', 'secret-owner-token').then(
        () => assert.fail('a value operation on a set must fail'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RedisStoreError);
      assert.equal(error.code, 'REDIS_REPLY');
      assert.match(error.message, /WRONGTYPE/);
      assert.ok(!inspect(error, { depth: 10 }).includes('secret-owner-token'));
      assert.equal(error.cause, undefined);
    } finally {
      await backend.close();
    }
  });

  it('a server busy running a script (BUSY) is an outage, to the adapter and to the breakers alike', async () => {
    const busy = await startRedis();
    const backend = await connect(configFor(busy.url));
    let script: ReturnType<typeof spawn> | undefined;
    try {
      await redisCli(busy.port, 'config', 'set', 'busy-reply-threshold', '10');
      script = spawn(
        'redis-cli',
        ['-h', '127.0.0.1', '-p', String(busy.port), 'eval', 'while true do end', '0'],
        { stdio: 'ignore' },
      );
      let failure: unknown;
      await waitFor('a BUSY reply', async () => {
        failure = await backend.get('k').then(
          () => undefined,
          (e: unknown) => e,
        );
        return failure instanceof RedisStoreError && /BUSY/.test(failure.message);
      });
      assert.ok(failure instanceof RedisStoreError);
      assert.equal(failure.code, 'REDIS_UNAVAILABLE');
      assert.equal(isOutage(failure), true);
    } finally {
      await redisCli(busy.port, 'script', 'kill').catch(() => undefined);
      if (script !== undefined && script.exitCode === null) await once(script, 'exit');
      await backend.close();
      await busy.stop();
    }
  });

  it('keeps an acknowledged session across a restart when the server persists', async () => {
    const persistent = await startRedis({ persistence: true });
    const backend = await connect(configFor(persistent.url), { reconnectMaxDelayMs: 100 });
    try {
      const store = new ServerSessionStore(
        createAppKeyspaces(backend, {
          app: 'a',
          sessionMaxAge: 60_000,
          loginTimeout: 60_000,
          refreshLockTtl: 10_000,
          refreshResultTtl: 60_000,
        }),
        'test-binding',
      );
      const session = {
        v: 1 as const,
        id: 'persisted',
        sub: 'alice',
        claims: { sub: 'alice' },
        tokens: { accessToken: 'at', expiresAt: 1 },
        createdAt: 1,
        lastSeenAt: 1,
      };
      const { ticket } = await store.create(session, 60_000);
      await persistent.restart();
      await waitFor('the backend to reconnect', () => backend.status() === 'ready', 5_000);
      assert.deepEqual((await store.load(ticket))?.session, session);
    } finally {
      await backend.close();
      await persistent.stop();
    }
  });
});

describe('redis backend, faults', () => {
  it('fails fast while the server is down and recovers by itself after a restart', async (t) => {
    const server = await startRedis();
    const commandTimeout = 300;
    let reconnects = 0;
    const backend = await connect(configFor(server.url, { commandTimeout }), {
      reconnectMaxDelayMs: 200,
      onReconnect: () => (reconnects += 1),
    });
    try {
      await backend.set('k', 'before', 60_000);
      assert.equal(backend.status(), 'ready');
      assert.equal(reconnects, 0, 'the first connection is not a reconnection');

      await server.kill('SIGKILL');
      await waitFor('the backend to notice', () => backend.status() === 'down', 2_000);
      const started = Date.now();
      const error = await backend.get('k').then(
        () => assert.fail('a command against a dead server must reject'),
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      assert.ok(error instanceof RedisStoreError);
      assert.equal(error.code, 'REDIS_UNAVAILABLE');
      assert.ok(elapsed <= commandTimeout, `rejected after ${elapsed} ms`);
      await assert.rejects(backend.ping());

      const restarted = Date.now();
      await server.restart();
      await waitFor('the backend to reconnect', () => backend.status() === 'ready', 5_000);
      t.diagnostic(`reconnected ${Date.now() - restarted} ms after the restart`);
      assert.equal(reconnects, 1, 'told once, so the store breaker can probe at once');
      await backend.set('k', 'after', 60_000);
      assert.equal(await backend.get('k'), 'after');
    } finally {
      await backend.close();
      await server.stop();
    }
  });

  it('a connection Redis just dropped (CLIENT KILL) is waited for, not failed, while the server is up', async () => {
    const server = await startRedis();
    const backend = await connect(configFor(server.url, { commandTimeout: 2_000 }), {
      reconnectMaxDelayMs: 50,
    });
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await backend.set('k', 'kept', 60_000);
      for (let round = 0; round < 3; round += 1) {
        await redisCli(server.port, 'client', 'kill', 'type', 'normal');
        await waitFor('the backend to notice', () => backend.status() !== 'ready', 2_000);
        // Without the wait these reject at once: "Stream isn't writeable". Fifty at once share
        // one wait (no listener per command: no MaxListenersExceededWarning).
        const reads = await Promise.all(Array.from({ length: 50 }, () => backend.get('k')));
        assert.deepEqual(new Set(reads), new Set(['kept']), `reads ${round} after the drop`);
        await backend.set('k', 'kept', 60_000);
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        warnings.map((w) => w.name),
        [],
        'no listener leak',
      );
    } finally {
      process.off('warning', onWarning);
      await backend.close();
      await server.stop();
    }
  });

  it('a hung server (connection open, no replies) fails the command within commandTimeout', async () => {
    const server = await startRedis();
    const commandTimeout = 300;
    const backend = await connect(configFor(server.url, { commandTimeout }));
    try {
      await backend.set('k', 'v', 60_000);
      await server.kill('SIGSTOP');
      const started = Date.now();
      const error = await backend.get('k').then(
        () => assert.fail('a command against a frozen server must reject'),
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      assert.ok(error instanceof RedisStoreError);
      assert.equal(error.code, 'REDIS_TIMEOUT');
      assert.ok(elapsed >= commandTimeout - 20 && elapsed < commandTimeout + 500, `${elapsed} ms`);
      await server.kill('SIGCONT');
      await waitFor('the server to answer again', async () => (await backend.get('k')) === 'v');
    } finally {
      await backend.close();
      await server.stop();
    }
  });

  it('reports connecting, then a clear error, when no server ever answers', async () => {
    const server = await startRedis();
    const url = server.url;
    await server.stop();
    const backend = createRedisBackend(configFor(url), {
      logger: silentLogger(),
      reconnectMaxDelayMs: 100,
    });
    try {
      assert.equal(backend.status(), 'connecting');
      await assert.rejects(backend.ready(500), (error: unknown) => {
        assert.ok(error instanceof RedisStoreError);
        assert.match(error.message, /ECONNREFUSED/);
        return true;
      });
      assert.equal(backend.status(), 'down');
      await assert.rejects(backend.get('k'), /REDIS_UNAVAILABLE|redis get failed/);
    } finally {
      await backend.close();
    }
  });
});

describe('redis test processes', () => {
  it('a missing redis-server fails with the Debian package to install', async () => {
    const helper = new URL('../support/redis-servers.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', `await (await import(${JSON.stringify(helper)})).startRedis()`],
      { env: { ...process.env, PATH: '/nonexistent' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.notEqual(code, 0);
    assert.match(stderr, /redis-server is not installed.*apt-get install -y redis-server/);
  });
});
