/** Sentinels that require a password (the Bitnami chart's default): their own credentials. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../../src/config/schema.ts';
import { resolveSecretFiles } from '../../src/config/secret-files.ts';
import { createRedisBackend, RedisStoreError } from '../../src/store/redis-backend.ts';
import { readFile } from 'node:fs/promises';
import {
  createTestCertificates,
  startSentinelSet,
  type SentinelSet,
  type TestCertificates,
} from '../support/redis-servers.ts';
import { captureLog } from '../resilience/log-capture.ts';

const SENTINEL_PASSWORD = 'Kp3sWq8zNd5vLm1tRb7x';

describe('redis backend, sentinels with requirepass', () => {
  let set: SentinelSet;
  let dir: string;
  before(async () => {
    set = await startSentinelSet({ sentinelPassword: SENTINEL_PASSWORD });
    dir = await mkdtemp(join(tmpdir(), 'eoa-sentinel-auth-'));
  });
  after(async () => {
    await set.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function configFor(extra: Partial<RedisConfig> = {}): RedisConfig {
    return {
      sentinels: [...set.sentinelAddresses],
      name: set.name,
      keyPrefix: `t-${randomUUID()}:`,
      commandTimeout: 1_000,
      ...extra,
    };
  }

  it('finds the master with sentinelPassword read from sentinelPasswordFile', async () => {
    const file = join(dir, 'sentinel-password');
    await writeFile(file, SENTINEL_PASSWORD + '\n');
    const document: Record<string, unknown> = {
      store: { redis: { sentinelPasswordFile: 'sentinel-password' } },
    };
    const resolved = resolveSecretFiles(document, dir);
    assert.deepEqual(resolved.problems, []);
    assert.deepEqual(resolved.files, [file], 'the file is watched for a rotation');
    const redis = (document['store'] as { redis: { sentinelPassword: string } }).redis;
    assert.equal(redis.sentinelPassword, SENTINEL_PASSWORD);

    const log = captureLog('debug');
    const backend = createRedisBackend(configFor({ sentinelPassword: redis.sentinelPassword }), {
      logger: log.logger,
      reconnectMaxDelayMs: 200,
    });
    try {
      await backend.ready();
      await backend.set('k', 'v', 60_000);
      assert.equal(await backend.get('k'), 'v');
      assert.equal(log.text().includes(SENTINEL_PASSWORD), false);
    } finally {
      await backend.close();
    }
  });

  const WRONG = 'Wz9yXv6uTs3rQp0oNm2l';
  for (const [label, extra, reply] of [
    ['without a sentinel password', {}, /^sentinels: NOAUTH\b/],
    ['with a wrong sentinel password', { sentinelPassword: WRONG }, /^sentinels: WRONGPASS\b/],
  ] as const) {
    it(`${label}: not ready, and the refusal is named`, async () => {
      const log = captureLog('debug');
      const backend = createRedisBackend(configFor(extra), {
        logger: log.logger,
        reconnectMaxDelayMs: 200,
      });
      try {
        // Refused credentials do not heal by retrying: ready() says so at once, not at the timeout.
        const started = Date.now();
        const error = await backend.ready(20_000).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(error instanceof RedisStoreError, String(error));
        assert.ok(Date.now() - started < 10_000, 'rejected before the timeout');
        assert.match(backend.credentialsRefused() ?? '', reply);
        const lines = log.matching(/redis refuses the credentials/);
        assert.equal(lines.length, 1, 'one line per outage, not per retry');
        assert.equal(lines[0]!['level'], 'error');
        assert.deepEqual(lines[0]!['keys'], [
          'store.redis.sentinelUsername',
          'store.redis.sentinelPassword',
        ]);
        assert.equal(log.text().includes(WRONG), false);
      } finally {
        await backend.close();
      }
    });
  }
});

describe('redis backend, sentinels and servers over TLS, sentinels with requirepass', () => {
  let certs: TestCertificates;
  let set: SentinelSet;
  let ca: string;
  before(async () => {
    certs = await createTestCertificates();
    set = await startSentinelSet({
      sentinelPassword: SENTINEL_PASSWORD,
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
    });
    ca = await readFile(certs.caFile, 'utf8');
  });
  after(async () => {
    await set.stop();
    await certs.remove();
  });

  const configFor = (tls: RedisConfig['tls']): RedisConfig => ({
    sentinels: [...set.sentinelAddresses],
    name: set.name,
    sentinelPassword: SENTINEL_PASSWORD,
    keyPrefix: `tls-${randomUUID()}:`,
    commandTimeout: 1_000,
    ...(tls === undefined ? {} : { tls }),
  });

  it('asks the sentinels and talks to the master over TLS, verified against the CA', async () => {
    const backend = createRedisBackend(configFor({ ca, insecureSkipVerify: false }), {
      logger: captureLog().logger,
      reconnectMaxDelayMs: 200,
    });
    try {
      await backend.ready();
      await backend.set('k', 'v', 60_000);
      assert.equal(await backend.get('k'), 'v');
    } finally {
      await backend.close();
    }
  });

  it('a sentinel certificate the CA did not sign: never ready', async () => {
    const otherCa = await readFile(certs.otherCaFile, 'utf8');
    const backend = createRedisBackend(configFor({ ca: otherCa, insecureSkipVerify: false }), {
      logger: captureLog().logger,
      reconnectMaxDelayMs: 200,
    });
    try {
      const error = await backend.ready(5_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof RedisStoreError, String(error));
      // ioredis reports a failed handshake with a sentinel only as a closed connection.
      assert.match(error.message, /All sentinels are unreachable/);
      assert.equal(backend.status() === 'ready', false);
    } finally {
      await backend.close();
    }
  });
});
