/**
 * The system a fault row runs against, all real: the provider (oidc-provider) behind a TCP
 * proxy, one `redis-server` or a Sentinel set, and replicas of the server as processes behind a
 * balancer that health-checks them as the shipped Envoy config does.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { loadConfig } from '../../src/config/load.ts';
import {
  Balancer,
  Endpoint,
  shippedHealthCheck,
} from '../../test/support/health-checked-endpoint.ts';
import {
  startRedis,
  startSentinelSet,
  type RedisProcess,
  type SentinelSet,
} from '../../test/support/redis-servers.ts';
import {
  spawnServer,
  type ServerProcess,
  type SpawnOptions,
} from '../../test/support/server-process.ts';
import { testSessionSecret } from '../../test/support/test-server.ts';
import { startTcpProxy, type TcpProxy } from '../../test/support/tcp-proxy.ts';

/** The longest a Check may take (`request.budget`), in ms. */
export const REQUEST_BUDGET_MS = 100;
/**
 * What the client may see on top of the budget before a Check counts as held: gRPC framing,
 * loopback and this process's own event loop, ms.
 */
export const TRANSPORT_ALLOWANCE_MS = 25;
/**
 * The Check deadline of the client. Far above the budget so that a held Check is measured, not
 * cut (Envoy's own default is 200 ms: anything held past it is an error for the user).
 */
export const CHECK_TIMEOUT_MS = 10_000;
/** How often replicas probe the provider (`oidc.probeInterval`, default 10 s), scaled down. */
export const PROBE_INTERVAL = '1s';

export const APP_HOST = 'app.example.com';
export const ORIGIN = `https://${APP_HOST}`;
const CLIENT_ID = 'app';
const CLIENT_SECRET = 'fault-suite-client-secret-0123456789';

/** The login (and `sub`) of user `i`. */
export function userName(i: number): string {
  return `user-${String(i).padStart(2, '0')}`;
}

export interface RigOptions {
  /** Default 2: this suite runs on two cores, shared with the provider and the clients. */
  readonly replicas?: number;
  /** One `redis-server`, or a master, one replica and three sentinels. */
  readonly store: 'redis' | 'sentinel';
  /** Default `cookie`. */
  readonly sessions?: 'cookie' | 'server';
  /** Access tokens' lifetime at the provider; default 300 s (none falls due during a row). */
  readonly accessTokenTtlSeconds?: number;
  /** The provider's refresh-token reuse interval (see `startTestProvider`); default 0, strict. */
  readonly refreshTokenReuseSeconds?: number;
  /** `store.redis.replicaAcks` (Sentinel only). */
  readonly replicaAcks?: { readonly replicas: number; readonly timeout?: string };
  /** Merged into the app's `oidc`. */
  readonly oidc?: Record<string, unknown>;
  /** Merged into the app's `refresh`. */
  readonly refresh?: Record<string, unknown>;
  /** Merged into the document's top level (`shutdown`, `breakers`, …). */
  readonly server?: Record<string, unknown>;
  /** How replica `index` is started (a clock offset preload). */
  readonly spawn?: (index: number) => SpawnOptions;
  /** Divides the shipped health check's durations. Default 1. */
  readonly healthCheckScale?: number;
  /** Users the provider knows; default 40. */
  readonly users?: number;
}

export interface Rig {
  readonly provider: TestProvider;
  readonly proxy: TcpProxy;
  readonly redis: RedisProcess | undefined;
  readonly sentinel: SentinelSet | undefined;
  readonly cluster: Balancer;
  readonly options: RigOptions;
  /** Starts one more replica and waits until the balancer sees it healthy. */
  addReplica(index: number): Promise<Endpoint>;
  /** Kills everything this rig started. Safe to call twice. */
  stop(): Promise<void>;
}

/** The replicas' config document (listen addresses are added per process). */
function serverDocument(
  options: RigOptions,
  issuer: string,
  redis: RedisProcess | undefined,
  sentinel: SentinelSet | undefined,
): Record<string, unknown> {
  const shortTokens = (options.accessTokenTtlSeconds ?? 300) < 60;
  const store =
    sentinel === undefined
      ? { url: redis?.url }
      : {
          sentinels: sentinel.sentinelAddresses,
          name: sentinel.name,
          ...(options.replicaAcks === undefined ? {} : { replicaAcks: options.replicaAcks }),
        };
  return {
    log: { level: process.env['FAULTS_LOG_LEVEL'] ?? 'warn' },
    request: { budget: `${REQUEST_BUDGET_MS}ms` },
    store: { type: 'redis', redis: store },
    ...options.server,
    apps: [
      {
        name: CLIENT_ID,
        match: { hosts: [APP_HOST] },
        oidc: {
          issuer,
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          probeInterval: PROBE_INTERVAL,
          ...options.oidc,
        },
        // Short-lived tokens fall due during the row: refreshed in their last 2 s.
        refresh: { ...(shortTokens ? { skew: '2s' } : {}), ...options.refresh },
        session: { store: options.sessions ?? 'cookie', secrets: [testSessionSecret] },
      },
    ],
  };
}

let rigsStarted = 0;

/**
 * With `FAULTS_LOG_DIR` set, writes what every replica of the rig logged (warnings and errors) to
 * `<dir>/rig-<pid>-<n>-replica-<i>.log`, to read why a row failed.
 */
function keepLogs(rig: number, procs: readonly ServerProcess[]): void {
  const dir = process.env['FAULTS_LOG_DIR'];
  if (dir === undefined || dir === '') return;
  mkdirSync(dir, { recursive: true });
  procs.forEach((proc, i) => {
    writeFileSync(join(dir, `rig-${process.pid}-${rig}-replica-${i}.log`), proc.output());
  });
}

export async function startRig(options: RigOptions): Promise<Rig> {
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch(() => undefined);
    }
  };
  try {
    // The proxy listens where the issuer says; the provider behind it on a port of its own.
    const target = { host: '127.0.0.1', port: 0 };
    const proxy = await startTcpProxy(target);
    cleanups.push(() => proxy.close());
    const provider = await startTestProvider({
      issuerPort: proxy.port,
      clients: [
        {
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          redirectUris: [`${ORIGIN}/oauth2/callback`],
        },
      ],
      users: Array.from({ length: options.users ?? 40 }, (_, i) => ({ sub: userName(i) })),
      accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 300,
      ...(options.refreshTokenReuseSeconds === undefined
        ? {}
        : { refreshTokenReuseSeconds: options.refreshTokenReuseSeconds }),
    });
    target.port = provider.port;
    cleanups.push(() => provider.close());

    let redis: RedisProcess | undefined;
    let sentinel: SentinelSet | undefined;
    if (options.store === 'redis') {
      redis = await startRedis();
      const started = redis;
      cleanups.push(() => started.stop());
    } else {
      sentinel = await startSentinelSet();
      const started = sentinel;
      cleanups.push(() => started.stop());
    }

    const document = serverDocument(options, provider.issuer, redis, sentinel);
    const problems = loadConfig(
      {
        text: JSON.stringify({
          ...document,
          listen: { grpc: '127.0.0.1:1', http: '127.0.0.1:2', admin: '127.0.0.1:3' },
        }),
        format: 'json',
      },
      {},
    );
    if (!problems.ok) throw new Error('the fault rig config is refused');

    const cluster = new Balancer();
    const settings = shippedHealthCheck(options.healthCheckScale ?? 1);
    const rigNumber = ++rigsStarted;
    const spawnedProcs: ServerProcess[] = [];
    cleanups.push(async () => {
      for (const endpoint of cluster.endpoints.splice(0)) {
        endpoint.remove();
        await endpoint.proc.stop('SIGKILL');
      }
      keepLogs(rigNumber, spawnedProcs);
    });
    const addReplica = async (index: number): Promise<Endpoint> => {
      const proc = await spawnServer(document, options.spawn?.(index) ?? {});
      spawnedProcs.push(proc);
      const endpoint = new Endpoint(proc, settings, CHECK_TIMEOUT_MS);
      cluster.endpoints.push(endpoint);
      await endpoint.ready;
      return endpoint;
    };
    // Every spawn runs to its end before a failure is thrown, so the cleanup finds them all.
    const spawned = await Promise.allSettled(
      Array.from({ length: options.replicas ?? 2 }, (_, i) => addReplica(i)),
    );
    for (const result of spawned) if (result.status === 'rejected') throw result.reason;

    return {
      provider,
      proxy,
      redis,
      sentinel,
      cluster,
      options,
      addReplica,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
