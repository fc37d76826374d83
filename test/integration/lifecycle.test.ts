import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { ServingStatus } from '../../src/server/protos.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { cliPath, freePort, healthClient, spawnServer } from '../support/server-process.ts';
import { startTestServer, testApp } from '../support/test-server.ts';

const secret = 'Pn4Xc8Vq2LhT6zRw0JbM5kYs9GdF1uAe3NoKi7EtWrB';
let provider: TestProvider;
before(async () => {
  provider = await startTestProvider({ clients: [] });
});
after(async () => {
  await provider.close();
});

const app = (name: string, host: string) => ({
  name,
  match: { hosts: [host] },
  oidc: { issuer: provider.issuer, clientId: name, clientSecret: 's' },
  session: { secrets: [secret] },
  publicPaths: [{ prefix: '/app/' }],
});

async function waitFor(predicate: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('lifecycle', () => {
  it('answers gRPC health for "" and the Authorization service, NOT_FOUND for others', async () => {
    const server = await startTestServer({ apps: [testApp('a', {}, provider.issuer)] });
    const health = healthClient(server.grpcTarget);
    try {
      assert.equal((await health.check('')).status, ServingStatus.SERVING);
      assert.equal(
        (await health.check('envoy.service.auth.v3.Authorization')).status,
        ServingStatus.SERVING,
      );
      assert.equal((await health.check('other.Service')).error?.code, grpc.status.NOT_FOUND);
    } finally {
      health.close();
      await server.close();
    }
  });

  it('stays NOT_SERVING until discovery answers, and /readyz names the app waiting', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const server = await startTestServer(
      { apps: [testApp('late', {}, issuer)] },
      { waitReady: false },
    );
    const health = healthClient(server.grpcTarget);
    try {
      assert.equal((await health.check('')).status, ServingStatus.NOT_SERVING);
      assert.equal(
        (await health.check('liveness')).status,
        ServingStatus.SERVING,
        'alive all the same',
      );
      const waiting = await fetch(`${server.adminBase}/readyz`);
      assert.equal(waiting.status, 503);
      const body = (await waiting.json()) as { waiting: { name: string }[] };
      assert.deepEqual(
        body.waiting.map((w) => w.name),
        ['app:late'],
      );
      const late = await startTestProvider({ clients: [], port });
      try {
        await waitFor(
          async () => (await health.check('')).status === ServingStatus.SERVING,
          'SERVING',
        );
        assert.equal((await fetch(`${server.adminBase}/readyz`)).status, 200);
      } finally {
        await late.close();
      }
    } finally {
      health.close();
      await server.close();
    }
  });

  it('goes NOT_SERVING when draining', async () => {
    const server = await startTestServer({ apps: [testApp('a', {}, provider.issuer)] });
    const seen: number[] = [];
    server.handle.health.watch((status) => seen.push(status));
    await server.close();
    assert.deepEqual(seen, [ServingStatus.NOT_SERVING]);
    assert.equal(server.handle.health.status(), ServingStatus.NOT_SERVING);
  });

  it('reloads on SIGHUP, keeps the old config when the new one is bad, drains and exits 0 on SIGTERM', async () => {
    const proc = await spawnServer({ log: { level: 'info' }, apps: [app('one', 'one.example')] });
    const envoy = new EnvoyClient({ target: proc.grpcTarget, timeoutMs: 2000 });
    const kindFor = async (host: string) =>
      (await envoy.check({ url: `https://${host}/app/` })).kind;
    try {
      assert.equal(await kindFor('one.example'), 'allow');
      assert.equal(await kindFor('two.example'), 'deny');

      // A bad file: rejected, the old config keeps serving.
      writeFileSync(proc.configPath, '{ "apps": [ { "name": 1 } ] ');
      proc.child.kill('SIGHUP');
      await waitFor(
        async () =>
          /eoa_config_reloads_total\{result="rejected"\} 1/.test(
            await (await fetch(`${proc.adminBase}/metrics`)).text(),
          ),
        'the rejected reload',
      );
      assert.equal(await kindFor('one.example'), 'allow');
      assert.match(proc.output(), /new configuration rejected/);

      // A good file: the new app is served without a restart.
      proc.writeConfig({
        log: { level: 'info' },
        apps: [app('one', 'one.example'), app('two', 'two.example')],
      });
      proc.child.kill('SIGHUP');
      await waitFor(async () => (await kindFor('two.example')) === 'allow', 'the new app');

      const health = healthClient(proc.grpcTarget);
      assert.equal((await health.check('')).status, ServingStatus.SERVING);
      health.close();
    } finally {
      envoy.close();
    }
    assert.equal(await proc.stop('SIGTERM'), 0);
    assert.match(proc.output(), /draining/);
  });

  it('refuses to start on a bad config and says why', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eoa-'));
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'apps:\n  - name: a\n    nonsense: true\n');
    const result = spawnSync(process.execPath, [cliPath, 'serve', '--config', path], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(result.status, 3, 'invalid configuration');
    assert.match(result.stderr, /apps\[0\]/);
  });
});
