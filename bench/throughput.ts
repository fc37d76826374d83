/** Drives one gRPC endpoint with h2load: maximum rate, latency at a fixed rate, CPU time per Check. */
import { join } from 'node:path';
import { cpuTimeMs } from './process-stats.ts';
import { runH2load } from './h2load.ts';

/** How hard and how long to drive each endpoint. */
export interface LoadPlan {
  /** Connections and streams per connection for the maximum-rate runs. */
  readonly clients: number;
  readonly streams: number;
  /** Connections and streams per connection for the fixed-rate latency runs. */
  readonly latencyClients: number;
  readonly latencyStreams: number;
  /** Measured seconds of each run. */
  readonly seconds: number;
  /** Unmeasured seconds before each endpoint's first run. */
  readonly warmupSeconds: number;
  /** Maximum-rate runs per endpoint, alternating endpoints; the best one counts. */
  readonly rounds: number;
}

/** An endpoint under load: the process answering, and how to count its Checks. */
export interface Endpoint {
  readonly url: string;
  readonly pid: number;
  /** Checks answered so far, when the endpoint counts them (the real server does). */
  readonly countChecks?: () => Promise<number>;
}

export interface MaxRate {
  readonly rps: number;
  /** CPU time (user + system) of the serving process per Check, microseconds. */
  readonly cpuUsPerCheck: number;
  /** Requests h2load saw complete with HTTP 2xx in the best run. */
  readonly succeeded: number;
}

export interface FixedRate {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const checkUrl = (target: string): string =>
  `http://${target}/envoy.service.auth.v3.Authorization/Check`;

/** The h2load URL of a `host:port` gRPC target. */
export function endpointUrl(target: string): string {
  return checkUrl(target);
}

/** A short unmeasured run so JIT-compiled code, pools and caches are warm. */
export async function warmUp(endpoint: Endpoint, frameFile: string, plan: LoadPlan): Promise<void> {
  if (plan.warmupSeconds <= 0) return;
  await runH2load({
    url: endpoint.url,
    frameFile,
    clients: plan.clients,
    streams: plan.streams,
    seconds: plan.warmupSeconds,
  });
}

/** One unthrottled run; CPU per Check from /proc and the endpoint's own count when it has one. */
export async function maxRateOnce(
  endpoint: Endpoint,
  frameFile: string,
  plan: LoadPlan,
): Promise<MaxRate> {
  const countBefore = endpoint.countChecks === undefined ? 0 : await endpoint.countChecks();
  const cpuBefore = cpuTimeMs(endpoint.pid);
  const result = await runH2load({
    url: endpoint.url,
    frameFile,
    clients: plan.clients,
    streams: plan.streams,
    seconds: plan.seconds,
  });
  const cpuMs = cpuTimeMs(endpoint.pid) - cpuBefore;
  const checks =
    endpoint.countChecks === undefined ? result.done : (await endpoint.countChecks()) - countBefore;
  if (result.failed + result.errored > 0 || result.status2xx < result.succeeded) {
    throw new Error(
      `h2load saw failures against ${endpoint.url}: ${result.failed} failed, ` +
        `${result.errored} errored, ${result.status2xx} of ${result.succeeded} 2xx`,
    );
  }
  return {
    rps: result.rps,
    cpuUsPerCheck: checks > 0 ? (cpuMs * 1000) / checks : Number.NaN,
    succeeded: result.succeeded,
  };
}

/** A run at `rps` in total, spread over the latency clients; per-request latency percentiles. */
export async function fixedRate(
  endpoint: Endpoint,
  frameFile: string,
  plan: LoadPlan,
  rps: number,
  scratchDir: string,
): Promise<FixedRate> {
  const result = await runH2load({
    url: endpoint.url,
    frameFile,
    clients: plan.latencyClients,
    streams: plan.latencyStreams,
    seconds: plan.seconds,
    rpsPerClient: rps / plan.latencyClients,
    logFile: join(scratchDir, `latency-${process.pid}.log`),
  });
  const latency = result.latencyMs ?? { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  return { rps: result.rps, p50Ms: latency.p50, p99Ms: latency.p99, maxMs: latency.max };
}
