import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Balancer, Endpoint, shippedHealthCheck } from '../support/health-checked-endpoint.ts';
import { spawnServer } from '../support/server-process.ts';

// A rolling restart (new replica first, then SIGTERM to the old one, as a Deployment with
// maxSurge 1 does) under continuous Check traffic, behind a balancer that health-checks each
// replica the way the shipped Envoy cluster does. Every duration is the shipped one divided by
// `scale`, so the test runs in seconds with the same proportions: 4 leaves 1.25 s between the
// balancer taking a replica out and its drain delay ending, which a busy machine's late timers
// do not eat up (at 10 they could).

const scale = 4;
const workers = 8;
const replicaCount = 3;
/**
 * Well above a loaded machine's Check latency (seconds, with a CPU hog beside the tests): a
 * failure here is a refused or reset call, not a slow one.
 */
const checkTimeoutMs = 5_000;

let provider: TestProvider;
before(async () => {
  provider = await startTestProvider({ clients: [] });
});
after(async () => {
  await provider.close();
});

function serverDocument(drainDelayMs: number): Record<string, unknown> {
  return {
    shutdown: { drainDelay: `${drainDelayMs}ms` },
    apps: [
      {
        name: 'one',
        match: { hosts: ['one.example'] },
        oidc: { issuer: provider.issuer, clientId: 'one', clientSecret: 's' },
        session: { secrets: ['Pn4Xc8Vq2LhT6zRw0JbM5kYs9GdF1uAe3NoKi7EtWrB'] },
        publicPaths: [{ prefix: '/app/' }],
      },
    ],
  };
}

/** The default `shutdown.drainDelay`, in ms. */
function defaultDrainDelay(): number {
  const text = JSON.stringify({ ...serverDocument(0), shutdown: {} });
  const defaults = loadConfig({ text, format: 'json' }, {});
  assert.ok(defaults.ok);
  return defaults.config.shutdown.drainDelay;
}

/** Restarts every replica once under load; returns the Checks sent and failed. */
async function rollingRestart(
  drainDelayMs: number,
): Promise<{ sent: number; failed: number; codes: Map<number | undefined, number> }> {
  const settings = shippedHealthCheck(scale);
  const cluster = new Balancer();
  const endpoints = cluster.endpoints;
  const add = async (): Promise<Endpoint> => {
    const proc = await spawnServer(serverDocument(drainDelayMs));
    const endpoint = new Endpoint(proc, settings, checkTimeoutMs);
    endpoints.push(endpoint);
    await endpoint.ready;
    return endpoint;
  };
  for (let i = 0; i < replicaCount; i++) await add();

  let sent = 0;
  let failed = 0;
  const codes = new Map<number | undefined, number>();
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      const endpoint = cluster.pick();
      sent++;
      const outcome = await endpoint.client.check({ url: 'https://one.example/app/' });
      if (outcome.kind !== 'allow') {
        failed++;
        const code = outcome.kind === 'error' ? outcome.grpcCode : -1;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
  };
  const load = Promise.all(Array.from({ length: workers }, worker));
  try {
    for (let i = 0; i < replicaCount; i++) {
      const old = endpoints[0]!;
      await add();
      assert.equal(await old.proc.stop('SIGTERM'), 0);
      // The endpoint leaves the cluster only once its process is gone: until then only the
      // health checker keeps traffic away from it.
      old.remove();
      endpoints.splice(endpoints.indexOf(old), 1);
    }
  } finally {
    running = false;
    await load;
    for (const endpoint of endpoints.splice(0)) {
      endpoint.remove();
      await endpoint.proc.stop('SIGINT');
    }
  }
  return { sent, failed, codes };
}

describe('rolling restart', () => {
  it('loses no Check when every replica is restarted under load with the default drain delay', async (t) => {
    const drainDelayMs = defaultDrainDelay() / scale;
    const settings = shippedHealthCheck(scale);
    // What the default must cover: Envoy sees NOT_SERVING within unhealthy_threshold rounds.
    assert.ok(
      settings.intervalMs * settings.unhealthyThreshold + settings.timeoutMs < drainDelayMs,
      'the shipped health check fits in the default drain delay',
    );
    const { sent, failed, codes } = await rollingRestart(drainDelayMs);
    t.diagnostic(`drainDelay ${drainDelayMs} ms: ${sent} Checks sent, ${failed} failed`);
    assert.ok(sent > 100, `load kept flowing (${sent})`);
    assert.equal(failed, 0, `failed Checks by gRPC code: ${JSON.stringify([...codes])}`);
  });

  it('catches a replica that stops accepting at once: drainDelay 0 fails Checks', async (t) => {
    const { sent, failed, codes } = await rollingRestart(0);
    t.diagnostic(
      `drainDelay 0: ${sent} Checks sent, ${failed} failed (${JSON.stringify([...codes])})`,
    );
    assert.ok(failed > 0, 'without the delay the balancer still sends to a closed replica');
  });
});
