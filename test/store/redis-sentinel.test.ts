/** The Redis backend through real Sentinels: contracts, and no acknowledged session lost in a failover. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { ServerSessionStore } from '../../src/session/server-session-store.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import {
  createRedisBackend,
  RedisStoreError,
  type RedisBackend,
  type ReplicaAcks,
} from '../../src/store/redis-backend.ts';
import { runServerSessionContract } from '../session/server-session-contract.ts';
import { startSentinelSet, waitFor, type SentinelSet } from '../support/redis-servers.ts';
import { runStoreContract } from './store-contract.ts';

/**
 * "Acknowledged" in these tests: the write resolved, which with `replicaAcks` means the master
 * applied it and `WAIT 1` confirmed a replica holds it, so a promoted replica has it too.
 */
const ACKS: ReplicaAcks = { replicas: 1, timeoutMs: 500 };

function sessionOf(n: number): Session {
  return {
    v: 1,
    id: `session-${n}`,
    sub: `user-${n % 7}`,
    sid: `sid-${n % 13}`,
    claims: { sub: `user-${n % 7}`, n },
    tokens: { accessToken: `access-${n}`, refreshToken: `refresh-${n}`, expiresAt: 1 },
    createdAt: n,
    lastSeenAt: n,
  };
}

describe('redis backend, sentinel', () => {
  let set: SentinelSet;
  before(async () => {
    set = await startSentinelSet();
  });
  after(() => set.stop());

  function configFor(): RedisConfig {
    return {
      sentinels: [...set.sentinelAddresses],
      name: set.name,
      keyPrefix: `t-${randomUUID()}:`,
      commandTimeout: 1_000,
    };
  }

  async function connect(): Promise<RedisBackend> {
    const backend = createRedisBackend(configFor(), {
      logger: silentLogger(),
      replicaAcks: ACKS,
      reconnectMaxDelayMs: 200,
    });
    await backend.ready();
    return backend;
  }

  const makeBackend = async () => {
    const backend = await connect();
    return { backend, close: () => backend.close() };
  };
  // Every write here goes through the WAIT-acknowledged path.
  runStoreContract('redis sentinel, replica-acknowledged writes', makeBackend);
  runServerSessionContract('redis sentinel, replica-acknowledged writes', makeBackend);

  it('a write no replica confirms in time rejects REDIS_NOT_REPLICATED, the next ones at once', async () => {
    const backend = await connect();
    const notReplicated = (error: unknown): boolean => {
      assert.ok(error instanceof RedisStoreError);
      assert.equal(error.code, 'REDIS_NOT_REPLICATED');
      return true;
    };
    try {
      await set.replica.kill('SIGSTOP');
      let started = Date.now();
      await assert.rejects(backend.set('k', 'v', 60_000), notReplicated);
      let elapsed = Date.now() - started;
      assert.ok(elapsed >= ACKS.timeoutMs - 20 && elapsed < ACKS.timeoutMs + 400, `${elapsed} ms`);
      // Known short now: refused without waiting, and without being applied.
      started = Date.now();
      await assert.rejects(backend.set('k', 'v1', 60_000), notReplicated);
      elapsed = Date.now() - started;
      assert.ok(elapsed < 100, `${elapsed} ms`);
      await set.replica.kill('SIGCONT');
      // The replica reports its offset every second; writes go through again after that.
      await waitFor('an acknowledged write', async () => {
        await backend.set('k', 'v2', 60_000);
        return true;
      });
      assert.equal(await backend.get('k'), 'v2');
    } finally {
      await set.replica.kill('SIGCONT');
      await backend.close();
    }
  });

  // Last: it kills the master of the shared set.
  it('loses no acknowledged session when the master dies under load', async (t) => {
    const backend = await connect();
    const keyspaces = createAppKeyspaces(backend, {
      app: 'failover',
      sessionMaxAge: 600_000,
      loginTimeout: 60_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
    });
    const store = new ServerSessionStore(keyspaces, 'test-binding');
    const ttl = 600_000;
    type Written = { readonly ticket: string; readonly id: string; readonly session: Session };
    let load: Promise<void> | undefined;
    let running = true;
    try {
      const beforeKill: Written[] = [];
      for (let n = 0; n < 200; n++) {
        const session = sessionOf(n);
        const { ticket, handle } = await store.create(session, ttl);
        beforeKill.push({ ticket, id: handle.id, session });
      }

      // Keep writing and reading throughout; a write counts only once it resolved.
      const underLoad: Written[] = [];
      const stats = { failedWrites: 0, failedReads: 0, reads: 0 };
      let ackedAfterPromotion = 0;
      let promoted = false;
      load = (async () => {
        for (let n = 1_000; running; n++) {
          const session = sessionOf(n);
          try {
            const { ticket, handle } = await store.create(session, ttl);
            underLoad.push({ ticket, id: handle.id, session });
            if (promoted) ackedAfterPromotion++;
          } catch {
            stats.failedWrites++;
          }
          try {
            const probe = beforeKill[n % beforeKill.length]!;
            assert.deepEqual((await store.load(probe.ticket))?.session, probe.session);
            stats.reads++;
          } catch {
            stats.failedReads++;
          }
          await sleep(5);
        }
      })();
      await sleep(200);

      const oldMaster = set.master.address;
      const killedAt = Date.now();
      await set.master.kill('SIGKILL');
      await waitFor('the sentinels to promote the replica', async () => {
        return (await set.currentMaster()) === set.replica.address;
      });
      const failoverMs = Date.now() - killedAt;
      promoted = true;
      const probe = beforeKill[0]!;
      await waitFor('reads through the backend again', async () => {
        return (await store.load(probe.ticket)) !== undefined;
      });
      const readsBackMs = Date.now() - killedAt;

      // The promoted master has no replica left, so nothing new can be acknowledged until the
      // old master returns, as a replica of the new one (how an operator brings it back; left
      // to itself a sentinel would demote it too, but only after several seconds).
      await set.master.restart(['--replicaof', set.replica.host, String(set.replica.port)]);
      await waitFor('acknowledged writes again', () => ackedAfterPromotion > 20, 20_000);
      const writesBackMs = Date.now() - killedAt;
      running = false;
      await load;

      t.diagnostic(
        `failover: promoted in ${failoverMs} ms, reads back after ${readsBackMs} ms, ` +
          `acknowledged writes back after ${writesBackMs} ms (old master restarted); ` +
          `${underLoad.length} sessions acknowledged under load, ` +
          `${stats.failedWrites} writes and ${stats.failedReads} reads failed during the outage`,
      );
      assert.notEqual(await set.currentMaster(), oldMaster);
      assert.ok(stats.failedWrites > 0, 'the outage was felt: some writes failed');
      for (const { ticket, session } of [...beforeKill, ...underLoad]) {
        assert.deepEqual((await store.load(ticket))?.session, session, session.id);
      }
      // The indexes back-channel logout relies on survived too.
      const indexed = new Set<string>();
      for (let sub = 0; sub < 7; sub++) {
        for (const id of await keyspaces.sessionsBySub.members(`user-${sub}`)) indexed.add(id);
      }
      const lost = [...beforeKill, ...underLoad].filter((w) => !indexed.has(w.id));
      assert.deepEqual(lost, [], 'every acknowledged session is still indexed by sub');
    } finally {
      running = false;
      await load;
      await backend.close();
    }
  });
});
