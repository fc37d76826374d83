import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parse } from 'yaml';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { loadConfig } from '../../src/config/load.ts';
import { parseDuration } from '../../src/config/duration.ts';
import { authorizationServiceName, loadProtos, ServingStatus } from '../../src/server/protos.ts';
import { repoPath } from '../deploy/repo-path.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

// A rolling restart (new replica first, then SIGTERM to the old one, as a Deployment with
// maxSurge 1 does) under continuous Check traffic, behind a balancer that health-checks each
// replica the way the shipped Envoy cluster does. Every duration is the shipped one divided by
// `scale`, so the test runs in seconds with the same proportions.

const scale = 10;
const workers = 8;
const replicaCount = 3;
/** Well above a loaded machine's Check latency: a failure here is a refused or reset call. */
const checkTimeoutMs = 1000;

interface HealthCheckSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** The ext_authz cluster's active health check in envoy/envoy.yaml, scaled down. */
function shippedHealthCheck(): HealthCheckSettings {
  const bootstrap = parse(readFileSync(repoPath('envoy/envoy.yaml'), 'utf8')) as {
    static_resources: { clusters: { name: string; health_checks: Record<string, unknown>[] }[] };
  };
  const cluster = bootstrap.static_resources.clusters.find((c) => c.name === 'envoy-oidc-authz');
  const check = cluster?.health_checks[0];
  assert.ok(check, 'envoy.yaml health-checks the ext_authz cluster');
  const scaled = (value: unknown): number => {
    const ms = parseDuration(String(value));
    assert.ok(ms !== undefined, `a duration: ${String(value)}`);
    return ms / scale;
  };
  return {
    intervalMs: scaled(check['interval']),
    timeoutMs: scaled(check['timeout']),
    unhealthyThreshold: Number(check['unhealthy_threshold']),
    healthyThreshold: Number(check['healthy_threshold']),
  };
}

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

/** One upstream host as Envoy's active health checker sees it. */
class Endpoint {
  readonly proc: ServerProcess;
  readonly client: EnvoyClient;
  healthy = false;
  readonly #health: grpc.Client;
  readonly #settings: HealthCheckSettings;
  #failures = 0;
  #successes = 0;
  #timer: NodeJS.Timeout | undefined;
  #removed = false;
  #becameHealthy: (() => void) | undefined;
  readonly ready: Promise<void>;

  constructor(proc: ServerProcess, settings: HealthCheckSettings) {
    this.proc = proc;
    this.#settings = settings;
    this.client = new EnvoyClient({ target: proc.grpcTarget, timeoutMs: checkTimeoutMs });
    this.#health = new grpc.Client(proc.grpcTarget, grpc.credentials.createInsecure());
    this.ready = new Promise((resolve) => (this.#becameHealthy = resolve));
    this.#probe();
  }

  #probe(): void {
    const method = loadProtos().health['Check']!;
    this.#health.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize as (bytes: Buffer) => { status: number },
      { service: authorizationServiceName },
      { deadline: Date.now() + this.#settings.timeoutMs },
      (error, response) => {
        if (this.#removed) return;
        if (error === null && response?.status === ServingStatus.SERVING) {
          this.#failures = 0;
          if (++this.#successes >= this.#settings.healthyThreshold) {
            this.healthy = true;
            this.#becameHealthy?.();
          }
        } else {
          this.#successes = 0;
          if (++this.#failures >= this.#settings.unhealthyThreshold) this.healthy = false;
        }
        this.#timer = setTimeout(() => this.#probe(), this.#settings.intervalMs);
      },
    );
  }

  remove(): void {
    this.#removed = true;
    clearTimeout(this.#timer);
    this.healthy = false;
    this.client.close();
    this.#health.close();
  }
}

/** Restarts every replica once under load; returns the Checks sent and failed. */
async function rollingRestart(
  drainDelayMs: number,
): Promise<{ sent: number; failed: number; codes: Map<number | undefined, number> }> {
  const settings = shippedHealthCheck();
  const endpoints: Endpoint[] = [];
  const add = async (): Promise<Endpoint> => {
    const endpoint = new Endpoint(await spawnServer(serverDocument(drainDelayMs)), settings);
    endpoints.push(endpoint);
    await endpoint.ready;
    return endpoint;
  };
  for (let i = 0; i < replicaCount; i++) await add();

  let sent = 0;
  let failed = 0;
  const codes = new Map<number | undefined, number>();
  let running = true;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const healthy = endpoints.filter((e) => e.healthy);
      // Envoy's panic routing: with no healthy host, every host gets traffic.
      const pool = healthy.length > 0 ? healthy : endpoints;
      const endpoint = pool[next++ % pool.length]!;
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
    const settings = shippedHealthCheck();
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
