/** The Redis backend against a real three-master Redis Cluster. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createRedisBackend, type RedisBackend } from '../../src/store/redis-backend.ts';
import { runServerSessionContract } from '../session/server-session-contract.ts';
import {
  redisCli,
  startRedisCluster,
  waitFor,
  type RedisClusterSet,
} from '../support/redis-servers.ts';
import { runStoreContract } from './store-contract.ts';

describe('redis backend, cluster of three masters', () => {
  let cluster: RedisClusterSet;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(() => cluster.stop());

  function configFor(keyPrefix = `t-${randomUUID()}:`): RedisConfig {
    return { cluster: [...cluster.addresses], keyPrefix, commandTimeout: 1_000 };
  }

  async function connect(config: RedisConfig): Promise<RedisBackend> {
    const backend = createRedisBackend(config, { logger: silentLogger() });
    await backend.ready();
    return backend;
  }

  const makeBackend = async () => {
    const backend = await connect(configFor());
    return { backend, close: () => backend.close() };
  };
  runStoreContract('redis cluster', makeBackend);
  runServerSessionContract('redis cluster', makeBackend);

  it('spreads keys over every master, each key whole on one node', async (t) => {
    t.diagnostic(`cluster created and converged in ${cluster.createdInMs} ms`);
    const prefix = `spread-${randomUUID()}:`;
    const backend = await connect(configFor(prefix));
    try {
      for (let i = 0; i < 60; i++) {
        await backend.set(`session:app:${i}`, `v${i}`, 60_000);
        await backend.addMember(`session-by-sub:app:${i}`, `m${i}`, 60_000);
      }
      const counts = await Promise.all(
        cluster.nodes.map(async (node) => {
          const keys = await redisCli(node.port, '--scan', '--pattern', `${prefix}*`);
          return keys === '' ? 0 : keys.split('\n').length;
        }),
      );
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        120,
      );
      assert.ok(
        counts.every((n) => n > 0),
        `every master holds keys: ${counts.join(', ')}`,
      );
      for (let i = 0; i < 60; i++) {
        assert.equal(await backend.take(`session:app:${i}`), `v${i}`);
        assert.deepEqual(await backend.members(`session-by-sub:app:${i}`), [`m${i}`]);
      }
    } finally {
      await backend.close();
    }
  });

  it('fails fast for keys whose master is down, and serves them again after it restarts', async () => {
    const config = configFor();
    const backend = await connect(config);
    const node = cluster.nodes[0]!;
    try {
      // Find a key that lives on the node about to be killed.
      let key = '';
      for (let i = 0; key === ''; i++) {
        await backend.set(`probe-${i}`, 'v', 60_000);
        const here = await redisCli(node.port, 'exists', `${config.keyPrefix}probe-${i}`);
        if (here === '1') key = `probe-${i}`;
      }
      await node.kill('SIGKILL');
      const started = Date.now();
      await assert.rejects(backend.get(key));
      const elapsed = Date.now() - started;
      assert.ok(elapsed <= config.commandTimeout + 200, `rejected after ${elapsed} ms`);
      await node.restart();
      await waitFor('the cluster to serve the key again', async () => {
        await backend.get(key);
        return true;
      });
    } finally {
      await backend.close();
    }
  });
});
