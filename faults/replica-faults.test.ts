import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { describe, it } from 'node:test';
import { waitFor } from '../test/support/redis-servers.ts';
import { clockOffsetPreloadPath } from '../test/support/server-process.ts';
import type { Endpoint } from '../test/support/health-checked-endpoint.ts';
import type { Direction } from '../test/support/tcp-proxy.ts';
import { assertDoneWhen, runRow, type FaultContext } from './support/row.ts';

// The replicas themselves fail: killed while their refresh grant is on the wire, restarted one
// by one, or running with a clock that is off.

/** Whether process `pid` owns a loopback TCP socket bound to one of `ports` (from /proc). */
function ownsPort(pid: number, ports: readonly number[]): boolean {
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const port = parseInt(fields[1]?.split(':')[1] ?? '', 16);
    if (ports.includes(port) && fields[9] !== undefined) inodes.add(fields[9]);
  }
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (inodes.has(/^socket:\[(\d+)\]$/.exec(target)?.[1] ?? '')) return true;
    } catch {
      // Closed meanwhile.
    }
  }
  return false;
}

/**
 * Holds the token endpoint's traffic in `direction` at the proxy until a refresh grant of a
 * replica is caught, SIGKILLs that replica (taken out of the balancer at that moment, as Envoy's
 * outlier detection would), waits until the proxy saw its connections go, then lets the rest
 * through: grants of the dead replica never reach the provider (`requests`) or their answers
 * never come back (`responses`).
 */
async function killMidRefresh(context: FaultContext, direction: Direction): Promise<void> {
  const { rig, extra } = context;
  rig.proxy.hold(direction, 'POST /token ');
  try {
    let victim: Endpoint | undefined;
    await waitFor(
      'a refresh grant on the wire',
      () => {
        const ports = rig.proxy.heldClientPorts();
        victim = rig.cluster.endpoints.find((e) => ownsPort(e.proc.child.pid!, ports));
        return victim !== undefined;
      },
      10_000,
    );
    await context.kill(victim!);
    // Its sockets close at the proxy a moment after the process is gone, one by one: until the
    // last has, a release would still send one of its grants. Every grant held after that is a
    // living replica's.
    const living = [...rig.cluster.endpoints];
    await waitFor(
      'every grant of the killed replica to be dropped',
      () =>
        rig.proxy
          .heldClientPorts()
          .every((port) => living.some((e) => ownsPort(e.proc.child.pid!, [port]))),
      5_000,
    );
  } finally {
    rig.proxy.release();
  }
  extra['refreshGrantsDroppedWithTheReplica'] = rig.proxy.droppedHeld();
}

describe('replica faults', () => {
  it('a replica SIGKILLed mid-refresh, before the provider saw the grant', async () => {
    const report = await runRow({
      row: 'Replica SIGKILLed mid-refresh (grant not sent)',
      scenario:
        'three replicas; token requests held at the proxy until one is caught, its replica SIGKILLed, its held requests dropped; 4 s access tokens, refresh.skew 2s',
      rig: { store: 'redis', replicas: 3, accessTokenTtlSeconds: 4 },
      recoveryMs: 5_000,
      fault: (context) => killMidRefresh(context, 'requests'),
    });
    assert.ok(
      (report.extra['refreshGrantsDroppedWithTheReplica'] as number) >= 1,
      'a refresh of the killed replica was in flight',
    );
    assertDoneWhen(report);
  });

  it('a replica SIGKILLed mid-refresh, after the provider rotated the token (30 s reuse interval)', async () => {
    const report = await runRow({
      row: 'Replica SIGKILLed mid-refresh (provider rotated, 30 s reuse interval)',
      scenario:
        "three replicas; token answers held at the proxy until one is caught, its replica SIGKILLed, its held answers dropped (the provider had rotated, and accepts the old token again for 30 s, as Okta's grace period and Auth0's reuse interval do); 4 s access tokens, refresh.skew 2s",
      rig: { store: 'redis', replicas: 3, accessTokenTtlSeconds: 4, refreshTokenReuseSeconds: 30 },
      recoveryMs: 5_000,
      fault: (context) => killMidRefresh(context, 'responses'),
    });
    assert.ok(
      (report.extra['refreshGrantsDroppedWithTheReplica'] as number) >= 1,
      'a refresh of the killed replica was in flight',
    );
    assertDoneWhen(report);
  });

  it('a replica SIGKILLed mid-refresh, after the provider rotated the token (strict rotation): only the sessions whose new tokens died with it end', async () => {
    const report = await runRow({
      row: 'Replica SIGKILLed mid-refresh (provider rotated, strict rotation)',
      scenario:
        'as above, with a provider that revokes the grant when a rotated refresh token is used again: the only copy of the new tokens died with the replica, so those sessions end at their next refresh; every other user is untouched',
      rig: { store: 'redis', replicas: 3, accessTokenTtlSeconds: 4 },
      recoveryMs: 5_000,
      fault: (context) => killMidRefresh(context, 'responses'),
    });
    const dropped = report.extra['refreshGrantsDroppedWithTheReplica'] as number;
    assert.ok(dropped >= 1, 'a refresh of the killed replica was in flight');
    // The limit, not the promise: at most the sessions whose new tokens died end; the Checks of
    // those users meanwhile (401, or 503 while their refresh is refused) are the fault's.
    assert.ok(
      report.sessionsLost <= dropped,
      `${report.sessionsLost} sessions lost, ${dropped} grants dropped with the replica`,
    );
    assert.deepEqual(report.loginsFailed, {});
  });

  it('rolling restart under load, health-checked at the shipped interval / 2', async () => {
    const scale = 2;
    const report = await runRow({
      row: 'Rolling restart',
      scenario: `three replicas replaced one by one (new one healthy, then SIGTERM to the old); envoy/envoy.yaml's health check and the default shutdown.drainDelay (10s), both divided by ${scale}`,
      rig: {
        store: 'redis',
        replicas: 3,
        healthCheckScale: scale,
        server: { shutdown: { drainDelay: `${10_000 / scale}ms` } },
      },
      recoveryMs: 1_000,
      async fault({ rig, extra }) {
        for (let i = 0; i < 3; i++) {
          const old = rig.cluster.endpoints[0]!;
          await rig.addReplica(3 + i);
          extra[`exitCode${i}`] = await old.proc.stop('SIGTERM');
          // It leaves the cluster only once its process is gone.
          old.remove();
          rig.cluster.endpoints.splice(rig.cluster.endpoints.indexOf(old), 1);
        }
      },
    });
    assertDoneWhen(report);
  });

  it("one replica's clock 2 min ahead, oidc.clockSkew 150s: logins across replicas", async () => {
    const report = await runRow({
      row: "One replica's clock 2 min off",
      scenario:
        'replica 0 runs with Date.now() 120 s ahead, oidc.clockSkew 150s; every login starts on one replica and calls back on the next; 10 more logins under traffic',
      rig: {
        store: 'redis',
        oidc: { clockSkew: '150s' },
        spawn: (index) =>
          index === 0
            ? {
                nodeArgs: ['--import', clockOffsetPreloadPath],
                env: { EOA_TEST_CLOCK_OFFSET_MS: '120000' },
              }
            : {},
      },
      async fault({ extra, logInMore }) {
        extra['loginsUnderTraffic'] = `${await logInMore(10)} of 10`;
      },
    });
    assertDoneWhen(report);
  });

  it("one replica's clock 2 min ahead, default oidc.clockSkew (30s): failed logins name clocks", async () => {
    const report = await runRow({
      row: "One replica's clock 2 min off, beyond clockSkew",
      scenario:
        'replica 0 runs with Date.now() 120 s ahead, oidc.clockSkew left at 30s; logins start on one replica and call back on the next; every login that fails must say clocks',
      rig: {
        store: 'redis',
        spawn: (index) =>
          index === 0
            ? {
                nodeArgs: ['--import', clockOffsetPreloadPath],
                env: { EOA_TEST_CLOCK_OFFSET_MS: '120000' },
              }
            : {},
      },
      async fault({ extra, logInMore }) {
        extra['loginsUnderTraffic'] = `${await logInMore(10)} of 10`;
      },
    });
    const silent = Object.keys(report.loginsFailed).filter((reason) => !/clock/i.test(reason));
    assert.deepEqual(silent, [], 'a login failed for the clock without naming clocks');
  });
});
