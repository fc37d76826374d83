import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { redisCli, waitFor, type SentinelSet } from '../test/support/redis-servers.ts';
import { assertDoneWhen, runRow } from './support/row.ts';

// A Sentinel set (master, one replica, three sentinels, down-after 1 s) under two replicas
// while 20 users browse with 4 s access tokens refreshed in their last 2 s, so refreshes are in
// flight when the master dies. The old master comes back as a replica of the new one, as a
// restarted pod does.

/** Kills the master, waits for the sentinels to promote the replica; returns the new master. */
async function failover(sentinel: SentinelSet): Promise<{ host: string; port: string }> {
  const old = await sentinel.currentMaster();
  await sentinel.master.kill('SIGKILL');
  let current = old;
  await waitFor('the sentinels to promote the replica', async () => {
    current = await sentinel.currentMaster();
    return current !== old;
  });
  const [host = '', port = ''] = current.split(':');
  return { host, port };
}

/** Restarts the killed master as a replica of `master` and waits until it is in sync. */
async function rejoin(sentinel: SentinelSet, master: { host: string; port: string }) {
  await sentinel.master.restart(['--replicaof', master.host, master.port]);
  await waitFor('the old master to sync as a replica', async () =>
    (await redisCli(sentinel.master.port, 'info', 'replication')).includes('master_link_status:up'),
  );
}

describe('Sentinel failover', () => {
  it('master killed, cookie sessions, refresh in flight', async () => {
    const report = await runRow({
      row: 'Sentinel failover, cookie sessions',
      scenario: 'master SIGKILLed; old master back as a replica once the new one is promoted',
      rig: { store: 'sentinel', accessTokenTtlSeconds: 4 },
      async fault({ rig, extra }) {
        const started = Date.now();
        const master = await failover(rig.sentinel!);
        extra['promotedAfterMs'] = Date.now() - started;
        await rejoin(rig.sentinel!, master);
      },
    });
    assertDoneWhen(report);
  });

  it('master killed, server sessions with replicaAcks {replicas: 1}', async () => {
    const report = await runRow({
      row: 'Sentinel failover, server sessions, replicaAcks',
      scenario:
        'master SIGKILLed, restarted as a replica at once; 503 with Retry-After accepted from the kill until a write can be acknowledged again (the old master in sync)',
      rig: {
        store: 'sentinel',
        sessions: 'server',
        replicaAcks: { replicas: 1 },
        accessTokenTtlSeconds: 4,
      },
      async fault({ rig, extra, storeUnreachable }) {
        const started = Date.now();
        const reachable = storeUnreachable();
        const master = await failover(rig.sentinel!);
        extra['promotedAfterMs'] = Date.now() - started;
        await rejoin(rig.sentinel!, master);
        reachable();
      },
    });
    assertDoneWhen(report);
  });

  it('replicaAcks {replicas: 1} with its one replica: master killed, back 6 s later', async () => {
    const report = await runRow({
      row: 'Sentinel, replicaAcks and its only replica promoted',
      scenario:
        'master SIGKILLed; the promoted replica has no replica to acknowledge writes for 6 s, then the old master rejoins; 503 with Retry-After accepted from the kill until it is in sync',
      rig: {
        store: 'sentinel',
        sessions: 'server',
        replicaAcks: { replicas: 1 },
        accessTokenTtlSeconds: 4,
      },
      async fault({ rig, extra, storeUnreachable }) {
        const started = Date.now();
        const reachable = storeUnreachable();
        const master = await failover(rig.sentinel!);
        extra['promotedAfterMs'] = Date.now() - started;
        await sleep(6_000);
        await rejoin(rig.sentinel!, master);
        reachable();
      },
    });
    assertDoneWhen(report);
  });
});
