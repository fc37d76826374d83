/** The Redis backend's credentials and transport: ACL users, password files, TLS and mTLS. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../../src/config/schema.ts';
import { resolveSecretFiles } from '../../src/config/secret-files.ts';
import { createLogger, silentLogger, type Logger } from '../../src/observability/logger.ts';
import {
  createRedisBackend,
  RedisStoreError,
  type RedisBackend,
} from '../../src/store/redis-backend.ts';
import {
  createTestCertificates,
  startRedis,
  type RedisProcess,
  type TestCertificates,
} from '../support/redis-servers.ts';

const PASSWORD = 'correct-horse-battery-staple';
const WRONG_PASSWORD = 'not-the-password-at-all';

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: () => string } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  return {
    logger: createLogger({ level: 'debug', destination: stream }),
    lines: () => chunks.join(''),
  };
}

/** Proves the connection really works: a write, a scripted op, a read. */
async function exercise(backend: RedisBackend): Promise<void> {
  await backend.set('lock', 'owner', 60_000);
  assert.equal(await backend.expireIfEquals('lock', 'owner', 60_000), true);
  await backend.addMember('idx', 'm', 60_000);
  assert.deepEqual(await backend.members('idx'), ['m']);
  assert.equal(await backend.take('lock'), 'owner');
  await backend.ping();
}

describe('redis backend, ACL user with password', () => {
  let server: RedisProcess;
  before(async () => {
    // The default user is off, and the app's user may touch only its own prefix.
    server = await startRedis({
      args: [
        '--user',
        'default',
        'off',
        '--user',
        'authz',
        'on',
        `>${PASSWORD}`,
        '~acl:*',
        '+@all',
      ],
    });
  });
  after(() => server.stop());

  function configFor(password: string): RedisConfig {
    return {
      url: server.url,
      username: 'authz',
      password,
      keyPrefix: `acl:${randomUUID()}:`,
      commandTimeout: 1_000,
    };
  }

  it('connects and works with the ACL username and password', async () => {
    const backend = createRedisBackend(configFor(PASSWORD), { logger: silentLogger() });
    try {
      await backend.ready();
      await exercise(backend);
    } finally {
      await backend.close();
    }
  });

  it('takes the password from a passwordFile (trailing newline removed)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'redis-password-'));
    try {
      await writeFile(join(dir, 'redis-password'), `${PASSWORD}\n`);
      const document: Record<string, unknown> = {
        store: { redis: { url: server.url, username: 'authz', passwordFile: 'redis-password' } },
      };
      assert.deepEqual(resolveSecretFiles(document, dir).problems, []);
      const resolved = (document['store'] as { redis: { password: string } }).redis.password;
      const backend = createRedisBackend(configFor(resolved), { logger: silentLogger() });
      try {
        await backend.ready();
        await exercise(backend);
      } finally {
        await backend.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a wrong password is a clear WRONGPASS error that never shows the password', async () => {
    const log = capturingLogger();
    const backend = createRedisBackend(configFor(WRONG_PASSWORD), {
      logger: log.logger,
      reconnectMaxDelayMs: 100,
    });
    try {
      const started = Date.now();
      const error = await backend.ready(5_000).then(
        () => assert.fail('a wrong password must not connect'),
        (e: unknown) => e,
      );
      // Retrying cannot fix a password, so startup learns of it at once, not after the timeout.
      assert.ok(Date.now() - started < 1_000, `rejected after ${Date.now() - started} ms`);
      assert.ok(error instanceof RedisStoreError);
      assert.match(error.message, /WRONGPASS/);
      assert.ok(!error.message.includes(WRONG_PASSWORD));
      assert.equal(backend.status(), 'down');
      await assert.rejects(backend.get('k'));
      assert.match(log.lines(), /WRONGPASS/);
      assert.ok(!log.lines().includes(WRONG_PASSWORD), 'the password reached a log line');
      assert.equal(log.lines().match(/redis unreachable/g)?.length, 1, 'one line per outage');
    } finally {
      await backend.close();
    }
  });

  it('the ACL key pattern confines the user to its prefix', async () => {
    const backend = createRedisBackend(
      { ...configFor(PASSWORD), keyPrefix: 'elsewhere:' },
      { logger: silentLogger() },
    );
    try {
      await backend.ready();
      await assert.rejects(backend.set('k', 'v', 60_000), /NOPERM/);
    } finally {
      await backend.close();
    }
  });
});

describe('redis backend, TLS', () => {
  let certs: TestCertificates;
  let mtls: RedisProcess;
  let tlsOnly: RedisProcess;
  let pem: { ca: string; cert: string; key: string; otherCa: string };
  before(async () => {
    certs = await createTestCertificates();
    const files = {
      certFile: certs.serverCertFile,
      keyFile: certs.serverKeyFile,
      caFile: certs.caFile,
    };
    [mtls, tlsOnly] = await Promise.all([
      startRedis({ tls: { ...files, authClients: true } }),
      startRedis({ tls: { ...files, authClients: false } }),
    ]);
    pem = {
      ca: await readFile(certs.caFile, 'utf8'),
      cert: await readFile(certs.clientCertFile, 'utf8'),
      key: await readFile(certs.clientKeyFile, 'utf8'),
      otherCa: await readFile(certs.otherCaFile, 'utf8'),
    };
  });
  after(async () => {
    await Promise.all([mtls.stop(), tlsOnly.stop()]);
    await certs.remove();
  });

  function configFor(server: RedisProcess, tls: RedisConfig['tls']): RedisConfig {
    return {
      url: `rediss://127.0.0.1:${server.port}`,
      keyPrefix: `tls-${randomUUID()}:`,
      commandTimeout: 1_000,
      ...(tls === undefined ? {} : { tls }),
    };
  }

  async function connects(config: RedisConfig, logger: Logger = silentLogger()): Promise<void> {
    const backend = createRedisBackend(config, { logger, reconnectMaxDelayMs: 100 });
    try {
      await backend.ready(1_500);
      await exercise(backend);
    } finally {
      await backend.close();
    }
  }

  async function refused(config: RedisConfig): Promise<string> {
    const backend = createRedisBackend(config, {
      logger: silentLogger(),
      reconnectMaxDelayMs: 100,
    });
    try {
      const error = await backend.ready(1_000).then(
        () => assert.fail('must not connect'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RedisStoreError);
      return error.message;
    } finally {
      await backend.close();
    }
  }

  it('rediss:// with the CA verifies the server and works', async () => {
    await connects(configFor(tlsOnly, { ca: pem.ca, insecureSkipVerify: false }));
  });

  it('mTLS: a client certificate and key are presented and accepted', async () => {
    await connects(
      configFor(mtls, { ca: pem.ca, cert: pem.cert, key: pem.key, insecureSkipVerify: false }),
    );
  });

  it('mTLS: without a client certificate the server refuses', async () => {
    await refused(configFor(mtls, { ca: pem.ca, insecureSkipVerify: false }));
  });

  it('a server certificate from an untrusted CA is refused', async () => {
    const message = await refused(
      configFor(tlsOnly, { ca: pem.otherCa, insecureSkipVerify: false }),
    );
    assert.match(message, /certificate/i);
  });

  it('insecureSkipVerify connects to an untrusted server and says so loudly', async () => {
    const log = capturingLogger();
    await connects(configFor(tlsOnly, { ca: pem.otherCa, insecureSkipVerify: true }), log.logger);
    const warning = log
      .lines()
      .split('\n')
      .find((line) => line.includes('insecureSkipVerify'));
    assert.ok(warning !== undefined, 'insecureSkipVerify must be logged');
    assert.equal((JSON.parse(warning) as { level: string }).level, 'error');
  });
});
