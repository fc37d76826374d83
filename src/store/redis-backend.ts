/** The Redis store backend: each port primitive as one atomic Redis command or script. */
import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { isUnavailableReply } from '../resilience/outage.ts';
import {
  answeredAsReplica,
  createRedisClient,
  defaultReconnectMaxDelayMs,
  type RedisClient,
  type RedisConnectionOptions,
} from './redis-connection.ts';
import { createReplicaGate, ShortOfReplicasError } from './replica-gate.ts';
import { checkTtl, type StoreBackend } from './store-backend.ts';

/** Why a Redis operation failed; stable so callers and breakers can tell outages from bugs. */
export type RedisStoreErrorCode =
  /** Not connected (down, reconnecting, or failing over); the command was never sent. */
  | 'REDIS_UNAVAILABLE'
  /** Sent, but no reply within `commandTimeout`. */
  | 'REDIS_TIMEOUT'
  /**
   * Not confirmed by enough replicas in time (applied on the master), or not sent at all because
   * too few replicas are there (see `replicaAcks`). The store answered: an outage for this write
   * only, which breakers do not count.
   */
  | 'REDIS_NOT_REPLICATED'
  /** Redis answered with an error (wrong type, bad auth, script error). */
  | 'REDIS_REPLY';

/**
 * A failed Redis operation. Built afresh from the library error so that neither the command's
 * arguments (keys, sealed records, owner tokens) nor the original error object, which carries
 * them, can reach a log line.
 */
export class RedisStoreError extends Error {
  readonly code: RedisStoreErrorCode;

  constructor(code: RedisStoreErrorCode, message: string) {
    super(message);
    this.name = 'RedisStoreError';
    this.code = code;
  }
}

/**
 * How long the replica gate's active check waits for replicas, ms: a replica in sync answers
 * `WAIT`'s request for its offset within a round trip; one that does not is what is missing.
 */
const CONFIRM_WAIT_MS = 50;

/** How a write is acknowledged; see {@link RedisBackendOptions.replicaAcks}. */
export interface ReplicaAcks {
  /** Replicas that must hold a write before it resolves (Redis `WAIT numreplicas`). */
  readonly replicas: number;
  /** How long to wait for them, in ms; past it the write rejects `REDIS_NOT_REPLICATED`. */
  readonly timeoutMs: number;
}

/** Dependencies and tuning of {@link createRedisBackend}. */
export interface RedisBackendOptions extends RedisConnectionOptions {
  readonly logger: Logger;
  /**
   * When set, a write resolves only once the master and `replicas` replicas hold it: each write
   * is pipelined with `WAIT replicas timeoutMs` on the same connection. That is what
   * "acknowledged" means for surviving a failover: an acknowledged write is on a replica the
   * sentinels can promote. Costs one replication round trip per write. While too few replicas
   * are there, writes are refused in one round trip instead of each waiting `timeoutMs`, and go
   * through again once enough replicas hold them (see `replica-gate.ts`; not in a Cluster, where
   * each write waits its own shard's WAIT). Default: unset, a write is acknowledged when the
   * master applied it (lost if the master dies before replicating).
   */
  readonly replicaAcks?: ReplicaAcks;
  /**
   * Called when {@link RedisBackend.credentialsRefused} changes (Redis starts or stops refusing
   * the credentials), so readiness is re-evaluated without waiting for a call.
   */
  readonly onCredentialsChange?: () => void;
  /**
   * Called each time the connection is re-established after it was lost (Redis back, or the
   * client on the master the sentinels promoted), so the store breaker can probe at once.
   */
  readonly onReconnect?: () => void;
}

/** Connection health as readiness probes and breakers want it. */
/** How long after a connection closed a command waits for the reconnection ({@link BLIP_WAIT_MS}). */
const BLIP_MS = 1_000;
/** The longest such a wait lasts, ms. */
const BLIP_WAIT_MS = 100;

export type RedisStatus = 'ready' | 'connecting' | 'down';

/** The Redis backend: the store port plus connection health. */
export interface RedisBackend extends StoreBackend {
  /** Round trip to the server; rejects like any command when down. */
  ping(): Promise<void>;
  /** `connecting` until first ready; `down` after losing the connection or failing to make it. */
  status(): RedisStatus;
  /**
   * Resolves once connected and authenticated. Rejects at once on a failure retrying cannot cure
   * (`WRONGPASS`, `NOAUTH`, an unverifiable server certificate), otherwise after `timeoutMs`
   * (default 5,000) with the last connection error; never with a credential in the message.
   * The client keeps reconnecting in the background either way.
   */
  ready(timeoutMs?: number): Promise<void>;
  /**
   * While the server refuses the credentials (`NOAUTH`, `WRONGPASS`, `NOPERM` on connecting or on
   * a command): Redis's reply, which never holds the password; `undefined` otherwise.
   */
  credentialsRefused(): string | undefined;
}

interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

// Owner-checked release and renewal: comparing and acting in one script is what makes a lease
// safe; a GET followed by a DEL could delete a lease another holder took in between.
const DELETE_IF_EQUALS = script(
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
);
const EXPIRE_IF_EQUALS = script(
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
);
// SADD, then lengthen the lifetime but never shorten it (`PEXPIRE NX` + `PEXPIRE GT` in 7.0
// terms; as a script it also runs on 6.2). PTTL is -1 for a set without a lifetime.
const ADD_MEMBER = script(
  "redis.call('SADD', KEYS[1], ARGV[1]) local ttl = redis.call('PTTL', KEYS[1]) if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1",
);

/** Translates a library error for operation `op`; only the error text is kept. */
function translate(op: string, error: unknown): RedisStoreError {
  if (error instanceof RedisStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const isReply = error instanceof Error && error.name === 'ReplyError';
  const code: RedisStoreErrorCode =
    message === 'Command timed out'
      ? 'REDIS_TIMEOUT'
      : isReply && !isUnavailableReply(message) && !answeredAsReplica(message)
        ? 'REDIS_REPLY'
        : 'REDIS_UNAVAILABLE';
  return new RedisStoreError(code, `redis ${op} failed: ${message}`);
}

/** Redis refusing who we are or what we may do. */
function isRefusedCredentials(message: string): boolean {
  return /^(WRONGPASS|NOAUTH|NOPERM)\b/.test(message);
}

/**
 * The refusal in a connection error, named by who refused: a data server (its reply), or the
 * sentinels (ioredis reports their last error inside "All sentinels are unreachable").
 */
function refusalIn(message: string): string | undefined {
  if (isRefusedCredentials(message)) return message;
  const sentinels =
    /^All sentinels are unreachable\b.*Last error: ((?:WRONGPASS|NOAUTH|NOPERM)\b.*)$/s.exec(
      message,
    );
  return sentinels === null ? undefined : `sentinels: ${sentinels[1] ?? ''}`;
}

/** Failures no reconnection can cure: refused credentials, an unverifiable certificate. */
function isPermanent(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return (
    refusalIn(error.message) !== undefined ||
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)
  );
}

type Arg = string | number;

/**
 * Creates the Redis backend and starts connecting. Commands fail fast while disconnected
 * (see `createRedisClient`); call {@link RedisBackend.ready} to wait for the first connection.
 *
 * Keys: every key is `config.keyPrefix` + the port's key (the keyspaces already scope by app).
 * Every primitive touches exactly one key, so no command is ever cross-slot in a Cluster and no
 * hash tag is needed today. When a future operation must touch several keys at once, its
 * keyspaces put the shared part in braces (`session:{<app>:<id>}`, `session-by-sid:{…}`): Redis
 * Cluster hashes only what is between the first `{` and the next `}`. Caller-supplied key parts
 * are percent-encoded by the keyspaces, so input can never form a tag; a brace in `keyPrefix`
 * would pin every key to one slot, which is logged as a warning in Cluster mode.
 */
export function createRedisBackend(
  config: RedisConfig,
  options: RedisBackendOptions,
): RedisBackend {
  const { logger } = options;
  const log = logger.child({ component: 'redis' });
  const prefix = config.keyPrefix;
  const acks = options.replicaAcks;
  if (acks !== undefined && (!Number.isInteger(acks.replicas) || acks.replicas < 1)) {
    throw new RangeError('replicaAcks.replicas must be a positive integer');
  }
  if (config.cluster !== undefined && prefix.includes('{')) {
    log.warn({}, 'store.redis.keyPrefix contains "{": every key lands in one cluster slot');
  }
  const client: RedisClient = createRedisClient(config, log, options);
  if (acks !== undefined && config.commandTimeout > 0 && acks.timeoutMs >= config.commandTimeout) {
    // The command timeout would cut WAIT short: every unconfirmed write would look like a hung
    // server to the breaker instead of a missing replica.
    log.warn(
      { replicaAcksTimeoutMs: acks.timeoutMs, commandTimeoutMs: config.commandTimeout },
      'store.redis.replicaAcks.timeout should be shorter than store.redis.commandTimeout',
    );
  }
  // In a Cluster each shard has its own replicas, and one gate for all would refuse writes to
  // healthy shards: there, every write waits on its own shard's WAIT, as before.
  const gate =
    acks === undefined || config.cluster !== undefined
      ? undefined
      : createReplicaGate({
          required: acks.replicas,
          timeoutMs: acks.timeoutMs,
          // `WAIT 0 0` never blocks: replicas holding everything this connection wrote.
          acknowledged: async () => Number(await client.call('wait', 0, 0)),
          confirm: () => confirmReplicas(acks.replicas),
          log,
        });

  /**
   * The gate's active check: on a connection of its own (a `WAIT` that blocks holds up no
   * Check), a small write of its own and `WAIT` for it, which asks the replicas for their
   * offset at once. Made when first needed; closed with the backend.
   */
  let confirmer: Redis | undefined;
  async function confirmReplicas(required: number): Promise<number> {
    if (closing || client instanceof Cluster) return 0;
    if (confirmer === undefined) {
      // Its first check waits for it to connect (bounded by the command timeout).
      confirmer = client.duplicate({ enableOfflineQueue: true });
      // Its failures show in the writes it stands for; the main connection logs the outage.
      confirmer.on('error', () => undefined);
    }
    const results = await confirmer
      .pipeline()
      .set(`${prefix}replica-gate`, String(Date.now()), 'PX', 10_000)
      .call('wait', required, CONFIRM_WAIT_MS)
      .exec();
    const waited = results?.[1];
    return waited?.[0] == null && typeof waited?.[1] === 'number' ? waited[1] : 0;
  }

  let everReady = false;
  let down = false;
  /** When the connection last closed (performance.now()), for {@link blipEnded}. */
  let lostAt: number | undefined;
  let blipWait: Promise<void> | undefined;
  let lastError: string | undefined;
  let refused: string | undefined;
  const setRefused = (next: string | undefined): void => {
    if ((next === undefined) === (refused === undefined)) {
      refused = next;
      return;
    }
    refused = next;
    options.onCredentialsChange?.();
  };
  // Errors repeat on every reconnection attempt; the log gets one line per outage.
  client.on('error', (error: unknown) => {
    lastError = error instanceof Error ? error.message : String(error);
    const refusal = refusalIn(lastError);
    if (refusal !== undefined) {
      if (refused === undefined) {
        log.error(
          {
            error: refusal,
            keys: refusal.startsWith('sentinels:')
              ? ['store.redis.sentinelUsername', 'store.redis.sentinelPassword']
              : ['store.redis.username', 'store.redis.password'],
          },
          'redis refuses the credentials: the store is down for this server',
        );
      }
      setRefused(refusal);
    }
    if (!down) {
      down = true;
      log.warn({ error: lastError }, everReady ? 'redis connection lost' : 'redis unreachable');
    }
  });
  client.on('close', () => {
    lostAt = performance.now();
    if (everReady && !down) {
      down = true;
      log.warn({}, 'redis connection lost');
    }
  });
  // The client should never end on its own (its retry strategy never gives up); should a
  // library edge case end it anyway, start over rather than stay down until a restart.
  let closing = false;
  client.on('end', () => {
    if (closing) return;
    log.error({}, 'redis client ended unexpectedly; reconnecting');
    setTimeout(() => {
      if (!closing) client.connect().catch(() => undefined);
    }, options.reconnectMaxDelayMs ?? defaultReconnectMaxDelayMs).unref();
  });
  client.on('ready', () => {
    if (down) {
      log.info({}, 'redis connection restored');
      options.onReconnect?.();
    }
    everReady = true;
    down = false;
    lastError = undefined;
    setRefused(undefined);
  });

  function status(): RedisStatus {
    if (client.status === 'ready') return 'ready';
    return everReady || down ? 'down' : 'connecting';
  }

  /**
   * A connection that dropped a moment ago while the server is up (Redis closed it: CLIENT KILL,
   * a restart of its proxy, a password rotation) is usually back within one reconnection: a
   * command sent in that window waits for it, up to {@link BLIP_WAIT_MS}, instead of failing at
   * once. The wait ends early when a reconnection attempt fails (the server is down: fail fast,
   * as before); the caller's own timeout bounds it too.
   */
  function blipEnded(): Promise<void> | undefined {
    if (client.status === 'ready' || lostAt === undefined || refused !== undefined) return;
    if (performance.now() - lostAt > BLIP_MS) return;
    // One wait (and one pair of listeners) shared by every command sent in the window.
    blipWait ??= new Promise<void>((resolve) => {
      const settle = (): void => {
        clearTimeout(timer);
        client.off('ready', settle);
        client.off('error', settle);
        blipWait = undefined;
        resolve();
      };
      const timer = setTimeout(settle, BLIP_WAIT_MS);
      client.on('ready', settle);
      client.on('error', settle);
    });
    return blipWait;
  }

  async function read(op: string, args: readonly Arg[]): Promise<unknown> {
    try {
      const blip = blipEnded();
      if (blip !== undefined) await blip;
      const reply = await client.call(op, ...args);
      if (refused !== undefined) setRefused(undefined);
      return reply;
    } catch (error) {
      if (error instanceof Error && isRefusedCredentials(error.message)) setRefused(error.message);
      throw translate(op, error);
    }
  }

  /**
   * Sends a write; with `replicaAcks`, pipelined with WAIT on the same connection, and only when
   * the gate lets it through. A write WAIT could not confirm rejects: it is applied on the master,
   * but the caller must not count on it.
   */
  async function write(op: string, args: readonly Arg[]): Promise<unknown> {
    if (acks === undefined) return read(op, args);
    try {
      const blip = blipEnded();
      if (blip !== undefined) await blip;
      await gate?.admit(op);
      const results = await client
        .pipeline()
        .call(op, ...args)
        .call('wait', acks.replicas, acks.timeoutMs)
        .exec();
      const [reply, waited] = results ?? [];
      if (reply === undefined || waited === undefined) {
        throw new RedisStoreError('REDIS_UNAVAILABLE', `redis ${op} failed: no reply`);
      }
      if (reply[0] !== null) throw reply[0];
      if (waited[0] !== null) throw waited[0];
      const acknowledged = typeof waited[1] === 'number' ? waited[1] : 0;
      gate?.settled(acknowledged);
      if (acknowledged < acks.replicas) {
        throw new RedisStoreError(
          'REDIS_NOT_REPLICATED',
          `redis ${op}: ${acknowledged} of ${acks.replicas} replicas confirmed in ${acks.timeoutMs} ms`,
        );
      }
      return reply[1];
    } catch (error) {
      if (error instanceof ShortOfReplicasError) {
        throw new RedisStoreError('REDIS_NOT_REPLICATED', error.message);
      }
      if (error instanceof Error && isRefusedCredentials(error.message)) setRefused(error.message);
      throw translate(op, error);
    }
  }

  /** Runs a script by digest, loading it once per server when Redis has not seen it. */
  async function evalScript(s: Script, key: string, args: readonly Arg[]): Promise<unknown> {
    try {
      return await write('evalsha', [s.sha, 1, key, ...args]);
    } catch (error) {
      if (!(error instanceof RedisStoreError) || !error.message.includes('NOSCRIPT')) throw error;
      return write('eval', [s.lua, 1, key, ...args]);
    }
  }

  function k(key: string): string {
    return prefix + key;
  }

  function orUndefined(reply: unknown): string | undefined {
    return typeof reply === 'string' ? reply : undefined;
  }

  return {
    status,
    credentialsRefused: () => refused,
    async ping() {
      await read('ping', []);
    },
    ready(timeoutMs = 5_000) {
      if (client.status === 'ready') return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const settle = (error?: RedisStoreError): void => {
          clearTimeout(timer);
          client.off('ready', onReady);
          client.off('error', onError);
          if (error === undefined) resolve();
          else reject(error);
        };
        const onReady = (): void => settle();
        // Bad credentials or an untrusted certificate will not heal by retrying: say so now.
        const onError = (error: unknown): void => {
          if (isPermanent(error)) settle(translate('connect', error));
        };
        const timer = setTimeout(() => {
          settle(
            new RedisStoreError(
              'REDIS_UNAVAILABLE',
              `redis not ready after ${timeoutMs} ms: ${lastError ?? 'still connecting'}`,
            ),
          );
        }, timeoutMs);
        client.on('ready', onReady);
        client.on('error', onError);
      });
    },
    async get(key) {
      return orUndefined(await read('get', [k(key)]));
    },
    async set(key, value, ttlMs) {
      await write('set', [k(key), value, 'PX', checkTtl(ttlMs)]);
    },
    async setIfAbsent(key, value, ttlMs) {
      return (await write('set', [k(key), value, 'PX', checkTtl(ttlMs), 'NX'])) === 'OK';
    },
    async delete(key) {
      return (await write('del', [k(key)])) === 1;
    },
    async deleteIfEquals(key, value) {
      return (await evalScript(DELETE_IF_EQUALS, k(key), [value])) === 1;
    },
    async take(key) {
      return orUndefined(await write('getdel', [k(key)]));
    },
    async expireIfEquals(key, value, ttlMs) {
      return (await evalScript(EXPIRE_IF_EQUALS, k(key), [value, checkTtl(ttlMs)])) === 1;
    },
    async addMember(key, member, ttlMs) {
      await evalScript(ADD_MEMBER, k(key), [member, checkTtl(ttlMs)]);
    },
    async members(key) {
      // Index sets hold one user's sessions, so SMEMBERS stays small; never KEYS.
      const reply = await read('smembers', [k(key)]);
      return Array.isArray(reply) ? reply.filter((m): m is string => typeof m === 'string') : [];
    },
    async removeMember(key, member) {
      return (await write('srem', [k(key), member])) === 1;
    },
    async close() {
      closing = true;
      confirmer?.disconnect();
      try {
        await client.quit();
      } catch {
        // Not connected: nothing to say goodbye to.
      } finally {
        client.disconnect();
      }
    },
  };
}
