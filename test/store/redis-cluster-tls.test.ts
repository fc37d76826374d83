/** The Redis backend to a Cluster over TLS: every node, the cluster bus too, verified by the CA. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createRedisBackend, RedisStoreError } from '../../src/store/redis-backend.ts';
import {
  createTestCertificates,
  startRedisCluster,
  type RedisClusterSet,
  type TestCertificates,
} from '../support/redis-servers.ts';

describe('redis backend, cluster over TLS', () => {
  let certs: TestCertificates;
  let cluster: RedisClusterSet;
  before(async () => {
    certs = await createTestCertificates();
    cluster = await startRedisCluster(3, {
      tls: {
        certFile: certs.serverCertFile,
        keyFile: certs.serverKeyFile,
        caFile: certs.caFile,
        clientCertFile: certs.clientCertFile,
        clientKeyFile: certs.clientKeyFile,
      },
    });
  });
  after(async () => {
    await cluster.stop();
    await certs.remove();
  });

  const configFor = (ca: string): RedisConfig => ({
    cluster: [...cluster.addresses],
    keyPrefix: `tls-${randomUUID()}:`,
    commandTimeout: 1_000,
    tls: { ca, insecureSkipVerify: false },
  });

  it('reads and writes keys on every shard over TLS', async () => {
    const backend = createRedisBackend(configFor(await readFile(certs.caFile, 'utf8')), {
      logger: silentLogger(),
      reconnectMaxDelayMs: 200,
    });
    try {
      await backend.ready();
      // Enough keys that every one of the three shards holds some.
      for (let i = 0; i < 30; i++) await backend.set(`k${i}`, `v${i}`, 60_000);
      for (let i = 0; i < 30; i++) assert.equal(await backend.get(`k${i}`), `v${i}`);
    } finally {
      await backend.close();
    }
  });

  it('a node certificate the CA did not sign: never ready', async () => {
    const backend = createRedisBackend(configFor(await readFile(certs.otherCaFile, 'utf8')), {
      logger: silentLogger(),
      reconnectMaxDelayMs: 200,
    });
    try {
      const error = await backend.ready(3_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof RedisStoreError, String(error));
      assert.equal(backend.status() === 'ready', false);
    } finally {
      await backend.close();
    }
  });
});
