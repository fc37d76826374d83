/** The store as the rest of the server sees it: which records may degrade to memory, and which may not. */
import type { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import type { Breaker } from '../resilience/breaker.ts';
import { createMemoryBackend } from './memory-backend.ts';
import { hungStoreDetector, withDeadline } from './deadline-backend.ts';
import { guardStore, withFallback } from './resilient-backend.ts';
import type { StoreBackend } from './store-backend.ts';

export interface SharedStore {
  /** For records that exist only in the shared store (server sessions): an outage is a 503. */
  readonly durable: StoreBackend;
  /**
   * For records that may live in this process during an outage (login replay marks, refresh
   * coordination, the revocation checks run on every session load), so cookie sessions and
   * logins keep working (SPEC §11).
   */
  readonly degradable: StoreBackend;
  /**
   * `undefined` when ready, else why not: "store reachable or its fallback in force". Both
   * stores are always ready: memory cannot be unreachable, and Redis has the memory fallback.
   */
  waitingFor(): string | undefined;
  /**
   * True while `degradable` records live in this process's memory (the store is down): locks and
   * marks taken now are not seen by other replicas. Always false for the memory store.
   */
  degraded(): boolean;
  /** Milliseconds since `degraded()` was last true (see `DegradableBackend.msSinceDegraded`). */
  msSinceDegraded(): number;
  /** True when no other process reads or writes this store (the memory store). */
  readonly local: boolean;
  close(): Promise<void>;
}

/** A single replica's store: everything in memory, nothing to degrade. */
export function memoryStore(now: () => number): SharedStore {
  const memory = createMemoryBackend({ now });
  return {
    durable: memory,
    degradable: memory,
    waitingFor: () => undefined,
    degraded: () => false,
    msSinceDegraded: () => Number.POSITIVE_INFINITY,
    local: true,
    close: () => memory.close(),
  };
}

/** What {@link redisStore} needs besides Redis and its breaker. */
export interface RedisStoreDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  /** A cheap round trip (PING), run when a call timed out to tell a hung store from a slow call. */
  readonly probe: () => Promise<unknown>;
  /** The longest a store call may hold a request, in ms; read on every call. */
  readonly callTimeoutMs: () => number;
  /**
   * Why the server is not ready because of the store, or `undefined`; read by readiness. Default:
   * always ready (the memory fallback serves what can degrade).
   */
  readonly waitingFor?: () => string | undefined;
}

/**
 * Redis behind the store breaker: guarded for durable records, with a memory fallback for the
 * rest; every call bounded by `callTimeoutMs`, and a hung Redis (a timed-out call whose probe
 * times out too) opens the breaker at once, so later calls fall back or fail without waiting.
 */
export function redisStore(
  redis: StoreBackend,
  breaker: Breaker,
  deps: RedisStoreDeps,
): SharedStore {
  const detectHung = hungStoreDetector({
    probe: deps.probe,
    timeoutMs: deps.callTimeoutMs,
    trip: () => breaker.trip(`no answer within ${deps.callTimeoutMs()}ms, not even to a probe`),
  });
  const bounded = withDeadline(redis, { timeoutMs: deps.callTimeoutMs, onTimeout: detectHung });
  const durable = guardStore(bounded, breaker);
  const degradable = withFallback(bounded, breaker, {
    logger: deps.logger,
    registry: deps.registry,
  });
  return {
    durable,
    degradable,
    waitingFor: deps.waitingFor ?? (() => undefined),
    degraded: () => degradable.degraded(),
    msSinceDegraded: () => degradable.msSinceDegraded(),
    local: false,
    async close() {
      await degradable.close();
      await redis.close();
    },
  };
}
