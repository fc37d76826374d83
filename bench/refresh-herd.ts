/** The refresh herd (SPEC §5): N concurrent Checks on one stale session, over 1 or 3 replicas. */
import { performance } from 'node:perf_hooks';
import type { TestProvider } from '../dev/test-provider.ts';
import { AppBrowser } from '../test/support/browser.ts';
import { EnvoyClient, type Outcome } from '../test/support/envoy-client.ts';
import type { UpstreamProtos } from '../test/support/upstream-protos.ts';
import { startServerProcess, type ServerProcess } from './child-servers.ts';

export const herdOrigin = 'https://dash.example.com';
/** Access tokens live 4 s and are refreshed in their last 2 s: stale 2 s after login. */
export const herdAccessTokenTtlSeconds = 4;
const staleAfterMs = 2_100;

export interface HerdResult {
  readonly replicas: number;
  readonly checks: number;
  /** From the first Check sent to the last answer, ms. */
  readonly allAnsweredMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Successful refresh grants at the provider during the herd. */
  readonly grants: number;
  readonly invalidGrants: number;
  readonly allowed: number;
}

/** The herd's app, as the refresh-storm integration test configures it. */
export function herdApp(issuer: string, secret: string, sessionSecret: string) {
  return {
    name: 'dash',
    match: { hosts: ['dash.example.com'] },
    oidc: { issuer, clientId: 'dash', clientSecret: secret, probeInterval: '1h' },
    refresh: { skew: '2s', lockTtl: '1s', waitTimeout: '4s', cooldown: '30s' },
    session: { secrets: [sessionSecret] },
  };
}

function grants(provider: TestProvider): { success: number; invalid: number } {
  const byOutcome = provider.counters().grants['refresh_token'] ?? {};
  return { success: byOutcome['success'] ?? 0, invalid: byOutcome['invalid_grant'] ?? 0 };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Spawns `replicas` servers (memory store for one, the given Redis for more), logs in once,
 * waits until the session is stale and sends `checks` Checks at once spread over the replicas.
 */
export async function runRefreshHerd(options: {
  readonly provider: TestProvider;
  readonly protos: UpstreamProtos;
  readonly replicas: number;
  readonly checks: number;
  readonly redisUrl: string;
  readonly clientSecret: string;
  readonly sessionSecret: string;
}): Promise<HerdResult> {
  const store =
    options.replicas === 1
      ? { type: 'memory' }
      : { type: 'redis', redis: { url: options.redisUrl, commandTimeout: '500ms' } };
  const servers: ServerProcess[] = [];
  const clients: EnvoyClient[] = [];
  try {
    for (let i = 0; i < options.replicas; i++) {
      const server = await startServerProcess({
        log: { level: 'warn' },
        store,
        apps: [herdApp(options.provider.issuer, options.clientSecret, options.sessionSecret)],
      });
      servers.push(server);
      clients.push(
        new EnvoyClient({ target: server.grpcTarget, protos: options.protos, timeoutMs: 10_000 }),
      );
    }
    const browser = new AppBrowser(clients[0]!);
    await browser.login(`${herdOrigin}/`);
    const cookie = browser.cookieHeader() ?? '';
    await sleep(staleAfterMs);
    const before = grants(options.provider);
    const latencies: number[] = [];
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: options.checks }, async (_, i): Promise<Outcome> => {
        const sent = performance.now();
        const outcome = await clients[i % clients.length]!.check({
          url: `${herdOrigin}/api/panel/${i}`,
          headers: [
            ['accept', 'application/json'],
            ['cookie', cookie],
          ],
        });
        latencies.push(performance.now() - sent);
        return outcome;
      }),
    );
    const allAnsweredMs = performance.now() - started;
    const after = grants(options.provider);
    latencies.sort((a, b) => a - b);
    const at = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    return {
      replicas: options.replicas,
      checks: options.checks,
      allAnsweredMs,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      grants: after.success - before.success,
      invalidGrants: after.invalid - before.invalid,
      allowed: outcomes.filter((o) => o.kind === 'allow').length,
    };
  } finally {
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
}
