/** A replica as Envoy's ext_authz cluster sees it: a Check client plus the shipped active health check. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { parse } from 'yaml';
import { parseDuration } from '../../src/config/duration.ts';
import { authorizationServiceName, loadProtos, ServingStatus } from '../../src/server/protos.ts';
import { repoPath } from '../deploy/repo-path.ts';
import { EnvoyClient } from './envoy-client.ts';
import type { ServerProcess } from './server-process.ts';

export interface HealthCheckSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** The ext_authz cluster's active health check in envoy/envoy.yaml, every duration divided by `scale`. */
export function shippedHealthCheck(scale = 1): HealthCheckSettings {
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

/** One upstream host as Envoy's active health checker sees it. */
export class Endpoint {
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

  /** `checkTimeoutMs` is the Check deadline (Envoy's ext_authz `timeout`). */
  constructor(proc: ServerProcess, settings: HealthCheckSettings, checkTimeoutMs: number) {
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

  /** Takes it out of the cluster: no more probes, no more Checks. */
  remove(): void {
    this.#removed = true;
    clearTimeout(this.#timer);
    this.healthy = false;
    this.client.close();
    this.#health.close();
  }
}

/**
 * Picks endpoints round-robin among the healthy ones, as Envoy's cluster does; with none healthy
 * every endpoint gets traffic (Envoy's panic routing).
 */
export class Balancer {
  readonly endpoints: Endpoint[] = [];
  #next = 0;

  pick(): Endpoint {
    const healthy = this.endpoints.filter((e) => e.healthy);
    const pool = healthy.length > 0 ? healthy : this.endpoints;
    const endpoint = pool[this.#next++ % pool.length];
    if (endpoint === undefined) throw new Error('no endpoint in the cluster');
    return endpoint;
  }
}
