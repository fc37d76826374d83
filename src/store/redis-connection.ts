/** Builds the ioredis client for a resolved Redis config: standalone URL, Sentinel or Cluster. */
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import { hostPortOf, withoutBrackets } from '../host-port.ts';
import type { Logger } from '../observability/logger.ts';

/** Either kind of ioredis client; both speak the same command surface. */
export type RedisClient = Redis | Cluster;

/** Connection tuning beyond the config file; defaults suit production. */
export interface RedisConnectionOptions {
  /**
   * Longest wait between reconnection attempts, in ms; attempts never stop. Default
   * {@link defaultReconnectMaxDelayMs}.
   */
  readonly reconnectMaxDelayMs?: number;
  /** How long one TCP/TLS connection attempt may take, in ms. Default 2,000. */
  readonly connectTimeoutMs?: number;
}

/**
 * `true` for an error reply that says the server is a replica: `READONLY` for a write, and the
 * error WAIT gives on a replica. Either way this connection is on a master that was demoted (or
 * a replica a stale sentinel named), and only a reconnection, which asks the sentinels afresh,
 * finds the master.
 */
export function answeredAsReplica(message: string): boolean {
  return /^(READONLY\b|ERR WAIT cannot be used with replica)/.test(message);
}

/**
 * The longest wait between reconnection attempts unless a test asks for less, in ms. Short: after
 * a Sentinel failover the promoted master is found at the next attempt (the sentinels' failover
 * announcement reaches only a connected client), and until then server sessions answer 503 (2 s
 * held them ~1 s past the promotion). Four attempts a second per replica while Redis is down
 * cost nothing worth saving.
 */
export const defaultReconnectMaxDelayMs = 250;

/** Reconnection delay after `attempt` failures: 50 ms doubling, capped, never giving up. */
function reconnectDelay(attempt: number, capMs: number): number {
  return Math.min(capMs, 50 * 2 ** Math.min(attempt, 16));
}

function tlsOptions(config: RedisConfig, logger: Logger): ConnectionOptions {
  const tls = config.tls;
  if (tls?.insecureSkipVerify === true) {
    // Loud on purpose: with verification off anyone on the path can read every session.
    logger.error(
      {},
      'store.redis.tls.insecureSkipVerify is on: the Redis server certificate is NOT verified',
    );
  }
  return {
    ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls?.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls?.key === undefined ? {} : { key: tls.key }),
    ...(tls?.insecureSkipVerify === true
      ? { rejectUnauthorized: false, checkServerIdentity: () => undefined }
      : {}),
  };
}

/**
 * Creates a connecting client. Every choice here serves failing fast, so a breaker in front of
 * the store sees an outage at once instead of requests piling up: no offline queue (a command
 * sent while disconnected rejects immediately), one retry per request, `commandTimeout` on every
 * command, and background reconnection with capped exponential backoff that never stops.
 * Credentials and TLS material go to the client only; nothing here logs them.
 */
export function createRedisClient(
  config: RedisConfig,
  logger: Logger,
  options: RedisConnectionOptions = {},
): RedisClient {
  const capMs = options.reconnectMaxDelayMs ?? defaultReconnectMaxDelayMs;
  const common = {
    commandTimeout: config.commandTimeout,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    maxRetriesPerRequest: 1,
    // A master demoted by a failover answers writes with READONLY (and the replica-acks probe
    // with a WAIT error): reconnect to find the new master (the failed command still fails, fast).
    reconnectOnError: (error: Error) => answeredAsReplica(error.message),
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
  } satisfies RedisOptions;
  const tls = config.tls === undefined ? undefined : tlsOptions(config, logger);
  const retryStrategy = (times: number): number => reconnectDelay(times, capMs);

  if (config.cluster !== undefined) {
    return new Cluster(config.cluster.map(hostPortOf), {
      enableOfflineQueue: false,
      clusterRetryStrategy: retryStrategy,
      redisOptions: { ...common, ...(tls === undefined ? {} : { tls }) },
    });
  }

  if (config.sentinels !== undefined) {
    return new Redis({
      ...common,
      enableOfflineQueue: false,
      retryStrategy,
      sentinels: config.sentinels.map(hostPortOf),
      name: config.name ?? '',
      // The sentinels' own credentials, apart from the data servers' (`username`, `password`).
      ...(config.sentinelUsername === undefined
        ? {}
        : { sentinelUsername: config.sentinelUsername }),
      ...(config.sentinelPassword === undefined
        ? {}
        : { sentinelPassword: config.sentinelPassword }),
      role: 'master',
      // The failover detector subscribes to +switch-master on the sentinels and drops the
      // connection as soon as they promote a replica. Without it a master demoted while still
      // reachable (a partition, `SENTINEL FAILOVER`) keeps our connection for the ~10 s until the
      // sentinels reconfigure it, serving stale reads and taking writes that its resync to the
      // new master then discards. Should a +switch-master arriving mid-reconnection end the
      // client, the `end` handler of the backend starts it again.
      failoverDetector: true,
      sentinelRetryStrategy: retryStrategy,
      ...(config.commandTimeout > 0 ? { sentinelCommandTimeout: config.commandTimeout } : {}),
      // With a tls block, both the sentinels and the servers they point at are spoken to over TLS.
      ...(tls === undefined ? {} : { tls, sentinelTLS: tls, enableTLSForSentinelMode: true }),
    });
  }

  if (config.url === undefined) {
    throw new TypeError('store.redis needs one of url, sentinels with name, or cluster');
  }
  const url = new URL(config.url);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) {
    throw new TypeError('store.redis.url: the path must be a database number, like /0');
  }
  return new Redis({
    ...common,
    enableOfflineQueue: false,
    retryStrategy,
    host: withoutBrackets(url.hostname),
    port: url.port === '' ? 6379 : Number(url.port),
    db,
    ...(url.username === '' || config.username !== undefined
      ? {}
      : { username: decodeURIComponent(url.username) }),
    ...(url.password === '' || config.password !== undefined
      ? {}
      : { password: decodeURIComponent(url.password) }),
    // `rediss:` without a tls block: TLS with the system's trust store.
    ...(tls === undefined && url.protocol !== 'rediss:' ? {} : { tls: tls ?? {} }),
  });
}
