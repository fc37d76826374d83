/**
 * Sentinel failover and lost replicas with `replicaAcks`, through the store as the server builds
 * it (Redis backend, store breaker, guarded and fallback stores): writes fail fast and come back
 * by themselves, nothing acknowledged is lost, and a demoted master is never written to.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { RedisConfig } from '../../src/config/schema.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import { createBreakers } from '../../src/resilience/breakers.ts';
import type { BreakerTuning } from '../../src/resilience/breaker.ts';
import { ServerSessionStore } from '../../src/session/server-session-store.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces, type AppKeyspaces } from '../../src/store/keyspaces.ts';
import {
  createRedisBackend,
  RedisStoreError,
  type RedisBackend,
  type ReplicaAcks,
} from '../../src/store/redis-backend.ts';
import { redisStore, type SharedStore } from '../../src/store/shared-store.ts';
import { replicaAcksTimeoutMs, storeCallTimeoutMs } from '../../src/main.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { redisCli, startSentinelSet, waitFor, type SentinelSet } from '../support/redis-servers.ts';

const COMMAND_TIMEOUT_MS = 1_000;
/**
 * As the server derives them from request.budget and `timeout: 500ms`. A budget of 2 s, not the
 * default 100ms: with the default, WAIT's answer has 10 ms to beat the call's own timeout, which a
 * busy machine does not always give it.
 */
const CALL_TIMEOUT_MS = storeCallTimeoutMs(2_000, COMMAND_TIMEOUT_MS);
const ACKS: ReplicaAcks = {
  replicas: 1,
  timeoutMs: replicaAcksTimeoutMs(500, CALL_TIMEOUT_MS),
};
/** The defaults of `breakers.store`. */
const STORE_BREAKER: BreakerTuning = {
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  rollingWindow: 10_000,
  resetTimeout: 5_000,
};
const TTL = 600_000;

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

/** The store of one server process, built as `startServer` builds it, with its log captured. */
interface Server {
  readonly prefix: string;
  readonly redis: RedisBackend;
  readonly store: SharedStore;
  readonly keyspaces: AppKeyspaces;
  readonly sessions: ServerSessionStore;
  readonly log: CapturedLog;
  breakerState(): string;
  close(): Promise<void>;
}

async function serverOn(set: SentinelSet): Promise<Server> {
  const log = captureLog();
  const prefix = `t-${randomUUID()}:`;
  const config: RedisConfig = {
    sentinels: [...set.sentinelAddresses],
    name: set.name,
    keyPrefix: prefix,
    commandTimeout: COMMAND_TIMEOUT_MS,
  };
  const redis = createRedisBackend(config, { logger: log.logger, replicaAcks: ACKS });
  const registry = new Registry();
  const breakers = createBreakers({
    registry,
    logger: log.logger,
    store: STORE_BREAKER,
    idp: STORE_BREAKER,
    storeProbe: () => redis.ping(),
  });
  const store = redisStore(redis, breakers.store, {
    logger: log.logger,
    registry,
    probe: () => redis.ping(),
    callTimeoutMs: () => CALL_TIMEOUT_MS,
  });
  const keyspaces = createAppKeyspaces(store.durable, {
    app: 'failover',
    sessionMaxAge: TTL,
    loginTimeout: 60_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
  });
  await redis.ready();
  return {
    prefix,
    redis,
    store,
    keyspaces,
    sessions: new ServerSessionStore(keyspaces, 'test-binding'),
    log,
    breakerState: () => breakers.store.state(),
    async close() {
      await store.close();
      breakers.shutdown();
    },
  };
}

/**
 * A 503 for the caller because too few replicas confirmed (or would confirm) the write; or,
 * before the first WAIT came back short, because the call ran out of its timeout: Redis checks
 * WAIT's timeout on its own clock (every 1000/hz ms, 100 ms by default), which may be later
 * than the store call's deadline.
 */
function notReplicated(error: unknown): boolean {
  assert.ok(error instanceof StoreUnavailableError, String(error));
  if (error.reason === 'timeout') return true;
  assert.ok(
    error.cause instanceof RedisStoreError,
    `${error.reason}: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`,
  );
  assert.equal(error.cause.code, 'REDIS_NOT_REPLICATED');
  return true;
}

async function timed(operation: () => Promise<unknown>): Promise<number> {
  const started = Date.now();
  await operation();
  return Date.now() - started;
}

describe('redis failover with replicaAcks, through the store breaker', () => {
  it('with the only replica killed, writes fail fast and reads go on; writes return with the replica', async (t) => {
    const set = await startSentinelSet();
    const server = await serverOn(set);
    try {
      const existing = await server.sessions.create(sessionOf(0), TTL);
      await set.replica.kill('SIGKILL');

      // The first write learns it the slow way: WAIT's timeout.
      const firstMs = await timed(() =>
        assert.rejects(server.sessions.create(sessionOf(1), TTL), notReplicated),
      );
      assert.ok(firstMs < ACKS.timeoutMs + 400, `first refusal took ${firstMs} ms`);
      // Every later one is refused in one round trip, and is not applied on the master.
      let slowestMs = 0;
      for (let n = 2; n < 52; n++) {
        const ms = await timed(() =>
          assert.rejects(server.sessions.create(sessionOf(n), TTL), notReplicated),
        );
        slowestMs = Math.max(slowestMs, ms);
      }
      // Well under WAIT's timeout: none waited for replicas again.
      assert.ok(slowestMs < ACKS.timeoutMs / 2, `slowest later refusal took ${slowestMs} ms`);
      // Reads are served all along: the breaker did not count the refusals.
      assert.deepEqual((await server.sessions.load(existing.ticket))?.session, sessionOf(0));
      assert.equal(server.breakerState(), 'closed');
      // Records that may degrade go to this process's memory meanwhile.
      await server.store.degradable.set('refresh-result:x', 'sealed', 60_000);
      assert.equal(await server.store.degradable.get('refresh-result:x'), 'sealed');

      const refusals = server.log.matching(/^writes refused/);
      assert.equal(refusals.length, 1, 'one line for the whole episode');
      assert.equal(refusals[0]?.['acknowledged'], 0);
      assert.equal(refusals[0]?.['required'], 1);

      const restartedAt = Date.now();
      await set.replica.restart();
      // In sync as the master sees it: listed online, writes streaming to it.
      await waitFor('the replica in sync', async () =>
        /^slave\d+:.*state=online/m.test(await redisCli(set.master.port, 'info', 'replication')),
      );
      // One more refused write at most: it starts the gate's own check, which asks the replica
      // for its offset at once instead of waiting for its once-a-second report, and reopens
      // the gate without any further write.
      await server.sessions.create(sessionOf(100), TTL).catch(notReplicated);
      await waitFor(
        'the gate to reopen by itself',
        () => server.log.matching(/^replicas acknowledge writes again/).length > 0,
        5_000,
      );
      await server.sessions.create(sessionOf(101), TTL);
      const recoveredMs = Date.now() - restartedAt;
      assert.equal(server.log.matching(/^replicas acknowledge writes again/).length, 1);
      assert.ok(!server.log.text().includes(server.prefix), 'no key in the log');
      assert.ok(!server.log.text().includes(existing.ticket.split('.')[1]!), 'no session key');
      t.diagnostic(
        `replica killed: first write refused after ${firstMs} ms (WAIT timeout ${ACKS.timeoutMs} ms), ` +
          `the next 50 in at most ${slowestMs} ms each; ` +
          `replica restarted: writes acknowledged again after ${recoveredMs} ms`,
      );
    } finally {
      await server.close();
      await set.stop();
    }
  });

  it('loses no acknowledged server session when the master is killed under load', async (t) => {
    // Two replicas: one is promoted, the other follows it and keeps acknowledging writes.
    const set = await startSentinelSet({ replicas: 2 });
    const server = await serverOn(set);
    type Written = { readonly ticket: string; readonly id: string; readonly session: Session };
    const acknowledged: Written[] = [];
    const stats = { failedWrites: 0, failedReads: 0 };
    let running = true;
    let killedAt = 0;
    let firstAckAfterKill = 0;
    let firstReadAfterKill = 0;
    let load: Promise<void> | undefined;
    try {
      for (let n = 0; n < 100; n++) {
        const session = sessionOf(n);
        const { ticket, handle } = await server.sessions.create(session, TTL);
        acknowledged.push({ ticket, id: handle.id, session });
      }
      const writer = async (from: number): Promise<void> => {
        for (let n = from; running; n += 4) {
          const session = sessionOf(n);
          const started = Date.now();
          try {
            const { ticket, handle } = await server.sessions.create(session, TTL);
            acknowledged.push({ ticket, id: handle.id, session });
            if (killedAt > 0 && started > killedAt && firstAckAfterKill === 0) {
              firstAckAfterKill = Date.now();
            }
          } catch {
            stats.failedWrites++;
          }
          try {
            const probe = acknowledged[n % 100]!;
            const readAt = Date.now();
            assert.deepEqual((await server.sessions.load(probe.ticket))?.session, probe.session);
            if (killedAt > 0 && readAt > killedAt && firstReadAfterKill === 0) {
              firstReadAfterKill = Date.now();
            }
          } catch {
            stats.failedReads++;
          }
          // Pacing only: about 200 writes a second from the four writers.
          await sleep(20);
        }
      };
      load = Promise.all([1_000, 1_001, 1_002, 1_003].map(writer)).then(() => undefined);
      await waitFor('writes under load', () => acknowledged.length > 150);

      const oldMaster = set.master.address;
      await set.master.kill('SIGKILL');
      killedAt = Date.now();
      await waitFor('the sentinels to promote a replica', async () => {
        const current = await set.currentMaster();
        return current !== oldMaster;
      });
      const promotedMs = Date.now() - killedAt;
      await waitFor('the backend on the new master', async () => {
        await server.redis.ping();
        return true;
      });
      const reconnectedMs = Date.now() - killedAt;
      await waitFor('acknowledged writes after the failover', () => firstAckAfterKill > 0, 30_000);
      const countAtFirstAck = acknowledged.length;
      await waitFor(
        'more writes on the new master',
        () => acknowledged.length > countAtFirstAck + 50,
      );
      running = false;
      await load;

      let lost = 0;
      for (const { ticket, session } of acknowledged) {
        // A read that meets the store unavailable (a reconnection after the failover on a busy
        // machine) is asked again: a 503 is not a loss, a session missing from the new master is.
        let loaded: Awaited<ReturnType<ServerSessionStore['load']>>;
        await waitFor('the store to answer the check of an acknowledged session', async () => {
          try {
            loaded = await server.sessions.load(ticket);
            return true;
          } catch (error) {
            if (error instanceof StoreUnavailableError) return false;
            throw error;
          }
        });
        if (loaded === undefined) lost++;
        else assert.deepEqual(loaded.session, session);
      }
      const indexed = new Set<string>();
      for (let sub = 0; sub < 7; sub++) {
        for (const id of await server.keyspaces.sessionsBySub.members(`user-${sub}`)) {
          indexed.add(id);
        }
      }
      const unindexed = acknowledged.filter((w) => !indexed.has(w.id)).length;
      t.diagnostic(
        `master killed: promoted after ${promotedMs} ms, backend on the new master after ` +
          `${reconnectedMs} ms; through the store, first read after ${firstReadAfterKill - killedAt} ms, ` +
          `first acknowledged write after ${firstAckAfterKill - killedAt} ms ` +
          `(store breaker resetTimeout ${STORE_BREAKER.resetTimeout} ms); ` +
          `${acknowledged.length} sessions acknowledged, ${lost} lost, ${unindexed} unindexed; ` +
          `${stats.failedWrites} writes and ${stats.failedReads} reads answered 503`,
      );
      assert.equal(lost, 0, 'every acknowledged session is on the new master');
      assert.equal(unindexed, 0, 'every acknowledged session is still indexed by sub');
      assert.ok(stats.failedWrites > 0, 'the outage was felt');
    } finally {
      running = false;
      await load;
      await server.close();
      await set.stop();
    }
  });

  it('never writes to the old master when it comes back; writes return once it replicates', async (t) => {
    const set = await startSentinelSet();
    const server = await serverOn(set);
    try {
      const existing = await server.sessions.create(sessionOf(0), TTL);
      const oldMaster = set.master;
      const killedAt = Date.now();
      await oldMaster.kill('SIGKILL');
      await waitFor('the sentinels to promote the replica', async () => {
        return (await set.currentMaster()) === set.replica.address;
      });
      await waitFor(
        'reads through the store again',
        async () => (await server.sessions.load(existing.ticket)) !== undefined,
        20_000,
      );
      const readsBackMs = Date.now() - killedAt;
      // No replica is left: writes are refused, fast.
      await assert.rejects(server.sessions.create(sessionOf(1), TTL), notReplicated);
      const refusedMs = await timed(() =>
        assert.rejects(server.sessions.create(sessionOf(2), TTL), notReplicated),
      );
      const reconnections = server.log.matching(/^redis connection lost/).length;

      // A supervisor restarts it with its own arguments: an empty master, until the sentinels
      // make it a replica of the new one.
      const restartedAt = Date.now();
      await oldMaster.restart();
      const errors: string[] = [];
      let written: { ticket: string } | undefined;
      await waitFor(
        'an acknowledged write',
        async () => {
          try {
            written = await server.sessions.create(sessionOf(3), TTL);
            return true;
          } catch (error) {
            const cause = (error as { cause?: unknown }).cause;
            errors.push(cause instanceof Error ? cause.message : String(error));
            return false;
          }
        },
        30_000,
      );
      const writesBackMs = Date.now() - restartedAt;

      assert.match(await redisCli(oldMaster.port, 'role'), /^slave\n127\.0\.0\.1\n/);
      assert.deepEqual(
        errors.filter((message) => /READONLY/.test(message)),
        [],
        'no write was sent to a replica',
      );
      assert.doesNotMatch(await redisCli(oldMaster.port, 'info', 'errorstats'), /READONLY/);
      assert.equal(
        server.log.matching(/^redis connection lost/).length,
        reconnections,
        'the connection stayed on the new master',
      );
      assert.ok(written !== undefined);
      assert.equal(
        await redisCli(
          set.replica.port,
          'exists',
          `${server.prefix}session:failover:${written.ticket.split('.')[0]!}`,
        ),
        '1',
      );
      t.diagnostic(
        `old master killed: reads back after ${readsBackMs} ms, writes then refused in ${refusedMs} ms; ` +
          `restarted as a master: ${errors.length} writes refused, none sent to it, ` +
          `acknowledged again ${writesBackMs} ms later, once the sentinels made it a replica`,
      );
    } finally {
      await server.close();
      await set.stop();
    }
  });

  it('leaves a master demoted while reachable as soon as the sentinels switch', async (t) => {
    const set = await startSentinelSet({ replicas: 2 });
    const server = await serverOn(set);
    const acknowledged: { readonly key: string; readonly at: number }[] = [];
    let running = true;
    let load: Promise<void> | undefined;
    try {
      load = (async () => {
        for (let n = 0; running; n++) {
          try {
            await server.redis.set(`w-${n}`, 'v', 60_000);
            acknowledged.push({ key: `w-${n}`, at: Date.now() });
          } catch {
            // Refused or not confirmed: not acknowledged.
          }
          await sleep(5); // pacing only
        }
      })();
      await waitFor('writes', () => acknowledged.length > 20);
      const startedAt = Date.now();
      assert.equal(await redisCli(set.sentinels[0]!.port, 'sentinel', 'failover', set.name), 'OK');
      await waitFor('the sentinels to promote a replica', async () => {
        return (await set.currentMaster()) !== set.master.address;
      });
      const promotedMs = Date.now() - startedAt;
      const current = await set.currentMaster();
      const promoted = set.replicas.find((r) => r.address === current);
      assert.ok(promoted !== undefined);
      const onNewMaster = async (key: string): Promise<boolean> =>
        (await redisCli(promoted.port, 'exists', `${server.prefix}${key}`)) === '1';
      let movedAt = 0;
      await waitFor('acknowledged writes on the new master', async () => {
        const last = acknowledged.at(-1);
        if (last === undefined || last.at <= startedAt || !(await onNewMaster(last.key))) {
          return false;
        }
        movedAt = last.at;
        return true;
      });
      await waitFor('more writes', () => acknowledged.filter((w) => w.at > movedAt).length > 20);
      running = false;
      await load;

      // Once on the new master, never back on the old one.
      const missing: { readonly key: string; readonly at: number }[] = [];
      for (const write of acknowledged) {
        if (!(await onNewMaster(write.key))) missing.push(write);
      }
      assert.deepEqual(
        missing.filter((w) => w.at >= movedAt),
        [],
        'every write acknowledged after the move is on the new master',
      );
      assert.doesNotMatch(await redisCli(set.master.port, 'info', 'errorstats'), /READONLY/);
      t.diagnostic(
        `SENTINEL FAILOVER: promoted after ${promotedMs} ms, acknowledged writes on the new master ` +
          `after ${movedAt - startedAt} ms; ${missing.length} of ${acknowledged.length} acknowledged ` +
          'writes missing from the new master (acknowledged on the old one by the replica ' +
          'that had not yet been moved to the new master)',
      );
    } finally {
      running = false;
      await load;
      await server.close();
      await set.stop();
    }
  });
});
