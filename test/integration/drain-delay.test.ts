import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { authorizationServiceName, ServingStatus } from '../../src/server/protos.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { healthClient, spawnServer, watchHealth } from '../support/server-process.ts';

// After SIGTERM a replica keeps serving for `shutdown.drainDelay` while it reports NOT_SERVING,
// so load balancers take it out of rotation before it stops accepting (rolling restarts).

let provider: TestProvider;
before(async () => {
  provider = await startTestProvider({ clients: [] });
});
after(async () => {
  await provider.close();
});

const document = (shutdown: Record<string, string>) => ({
  log: { level: 'info' },
  shutdown,
  apps: [
    {
      name: 'one',
      match: { hosts: ['one.example'] },
      oidc: { issuer: provider.issuer, clientId: 'one', clientSecret: 's' },
      session: { secrets: ['Pn4Xc8Vq2LhT6zRw0JbM5kYs9GdF1uAe3NoKi7EtWrB'] },
      publicPaths: [{ prefix: '/app/' }],
    },
  ],
});

describe('shutdown.drainDelay', () => {
  it('reports NOT_SERVING at once after SIGTERM, keeps serving checks, and a second signal ends the delay', async () => {
    // A delay far longer than the test: only the second signal can make the process exit.
    const drainDelayMs = 120_000;
    const proc = await spawnServer(document({ drainDelay: '120s', drainTimeout: '5s' }));
    const watch = watchHealth(proc.grpcTarget, authorizationServiceName);
    const envoy = new EnvoyClient({ target: proc.grpcTarget, timeoutMs: 2000 });
    try {
      await watch.until(ServingStatus.SERVING);
      assert.equal((await envoy.check({ url: 'https://one.example/app/' })).kind, 'allow');
      const signalledAt = Date.now();
      proc.child.kill('SIGTERM');
      await watch.until(ServingStatus.NOT_SERVING);
      assert.equal((await fetch(`${proc.adminBase}/readyz`)).status, 503);
      const health = healthClient(proc.grpcTarget);
      assert.equal(
        (await health.check(authorizationServiceName)).status,
        ServingStatus.NOT_SERVING,
      );
      health.close();

      // Still serving, on the open connection and on a new one.
      for (let i = 0; i < 20; i++) {
        assert.equal((await envoy.check({ url: 'https://one.example/app/' })).kind, 'allow');
      }
      const fresh = new EnvoyClient({ target: proc.grpcTarget, timeoutMs: 2000 });
      assert.equal((await fresh.check({ url: 'https://one.example/app/' })).kind, 'allow');
      fresh.close();
      assert.equal(proc.child.exitCode, null);

      proc.child.kill('SIGINT');
      const [code] = (await once(proc.child, 'exit')) as [number | null];
      assert.equal(code, 0);
      assert.ok(Date.now() - signalledAt < drainDelayMs, 'the second signal ended the delay');
      assert.match(proc.output(), /drain delay cut short/);
      assert.match(proc.output(), /no longer accepting/);
    } finally {
      watch.close();
      envoy.close();
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    }
  });

  it('stops accepting once the delay is over, then exits 0 by itself', async () => {
    const drainDelayMs = 300;
    const proc = await spawnServer(
      document({ drainDelay: `${drainDelayMs}ms`, drainTimeout: '5s' }),
    );
    const watch = watchHealth(proc.grpcTarget, authorizationServiceName);
    try {
      await watch.until(ServingStatus.SERVING);
      const signalledAt = Date.now();
      const exited = proc.stop('SIGTERM');
      await watch.until(ServingStatus.NOT_SERVING);
      assert.equal(await exited, 0);
      // Timers never fire early: the process cannot have stopped accepting before the delay.
      assert.ok(Date.now() - signalledAt >= drainDelayMs, 'served through the delay');
      const output = proc.output();
      assert.ok(output.indexOf('"draining"') < output.indexOf('no longer accepting'));
      assert.equal(
        (await fetch(`${proc.adminBase}/readyz`).catch((error: unknown) => error)) instanceof Error,
        true,
        'the listeners are closed',
      );
    } finally {
      watch.close();
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    }
  });
});
