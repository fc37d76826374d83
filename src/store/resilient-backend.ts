/** Store backends that survive the shared store going down: fail fast (guarded) or degrade to memory (fallback). */
import { performance } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';
import { StoreUnavailableError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Breaker } from '../resilience/breaker.ts';
import { isOutage, isRequestDeadline } from '../resilience/outage.ts';
import { createMemoryBackend } from './memory-backend.ts';
import type { CallBound, StoreBackend } from './store-backend.ts';

/** Runs the primary step, then the memory step regardless, and tells whether either acted. */
async function either(
  onPrimary: Promise<boolean>,
  onMemory: () => Promise<boolean>,
): Promise<boolean> {
  const fromPrimary = await onPrimary;
  const fromMemory = await onMemory();
  return fromPrimary || fromMemory;
}

const refusedStore = (retryAfterMs: number): Error =>
  new StoreUnavailableError('circuit_open', { retryAfterMs });

/**
 * Whether a request's earlier store call ran out of time: its later calls do not wait again.
 * They are not made at all, so the breaker counts the store's failures, not the request's.
 */
const timedOutBefore = (bound: CallBound | undefined): boolean => bound?.storeTimedOut === true;

/**
 * For records that exist only in the shared store (server sessions and their indexes): every
 * call goes through the store breaker; an outage or an open breaker rejects with
 * {@link StoreUnavailableError} (503 with `Retry-After` for that request, never a login), at
 * once for a read whose request already had a store call run out of time ({@link CallBound}).
 * Verdicts (a Redis error reply, a bad argument) reject unchanged. `close()` does not close
 * `primary`, which other decorators share; its owner closes it.
 */
export function guardStore(primary: StoreBackend, breaker: Breaker): StoreBackend {
  const unavailable = (error: unknown): never => {
    if (error instanceof StoreUnavailableError || !isOutage(error)) throw error;
    throw new StoreUnavailableError('failure', {
      retryAfterMs: breaker.retryAfterMs(),
      cause: error,
    });
  };
  const guard = <T>(op: () => Promise<T>): Promise<T> =>
    breaker.run(op, refusedStore).catch(unavailable);
  return {
    get: (key, bound) =>
      timedOutBefore(bound)
        ? Promise.reject(new StoreUnavailableError('timeout', { retryAfterMs: 1_000 }))
        : guard(() => primary.get(key, bound)),
    set: (key, value, ttlMs) => guard(() => primary.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => guard(() => primary.setIfAbsent(key, value, ttlMs)),
    delete: (key) => guard(() => primary.delete(key)),
    deleteIfEquals: (key, value) => guard(() => primary.deleteIfEquals(key, value)),
    take: (key) => guard(() => primary.take(key)),
    expireIfEquals: (key, value, ttlMs) => guard(() => primary.expireIfEquals(key, value, ttlMs)),
    addMember: (key, member, ttlMs) => guard(() => primary.addMember(key, member, ttlMs)),
    members: (key) => guard(() => primary.members(key)),
    removeMember: (key, member) => guard(() => primary.removeMember(key, member)),
    close: () => Promise.resolve(),
  };
}

/** A backend that may be running on its memory fallback. */
export interface DegradableBackend extends StoreBackend {
  /**
   * True while records are kept in process memory: the store failed and has not yet answered
   * again, or its breaker is not closed. What one replica writes now, the others do not see.
   */
  degraded(): boolean;
  /**
   * Milliseconds since records were last kept in process memory: 0 while they are, `Infinity`
   * if they never were. A degradation that began and ended between two looks at
   * {@link degraded} (one timed-out call, the next answered) still shows here.
   */
  msSinceDegraded(): number;
}

/** Options for {@link withFallback}. */
export interface FallbackOptions {
  readonly logger: Logger;
  /** Where `eoa_store_degraded` (0 or 1) goes; build one fallback backend per registry. */
  readonly registry: Registry;
  /**
   * How often, while degraded and the breaker not open, a write of {@link PROBE_KEY} asks the store
   * whether it is back. Default 1 s.
   */
  readonly probeEveryMs?: number;
}

/**
 * The key a degraded store's probe writes (under the store's key prefix), with a short TTL: a
 * write, because a store that answers reads but refuses writes is still degraded.
 */
export const PROBE_KEY = 'store-probe';
const PROBE_TTL_MS = 10_000;

/**
 * For records that may live in one process for a while (login replay marks, refresh locks and
 * results): calls go to `primary` through the store breaker; while it fails or the breaker is
 * open they go to an in-process memory backend instead. Degradation is logged once when it
 * starts and once when it ends, exported as `eoa_store_degraded`, and ends by itself when the
 * breaker closes again (its half-open probe succeeded) or a call succeeds on a closed breaker.
 * A degradation too short to open the breaker (one failed call in a blip) has no half-open probe
 * to end it, and a quiet replica may make no call for a long while: every `probeEveryMs` a write
 * of {@link PROBE_KEY} asks instead, so the replica neither reports a healthy store as degraded
 * nor keeps refreshes waiting for it.
 * A read whose request already had a store call run out of time ({@link CallBound}) is answered
 * from memory at once, as during an outage.
 *
 * What happens at the switches, and why it errs on the safe side:
 * - During the outage each replica has its own memory: one-time operations (`setIfAbsent`,
 *   `take`) stay one-time within this replica, but do not see marks made elsewhere or in the
 *   primary before the outage. A login `state` is also bound to its browser cookie and its code
 *   is one-time at the provider, so the window this opens is small; refresh coordination falls
 *   back to in-process coalescing.
 * - Writes and deletes made during the outage do not reach the primary; what the primary held
 *   expires by its own TTL (refresh leases are short).
 * - After recovery, what memory gained during the outage is kept until it expires and still
 *   honoured: reads and `take` fall through to it when the primary has nothing, `setIfAbsent`
 *   refuses a key memory still holds (a mark made during the outage is never forgotten by this
 *   replica), deletes reach both, `members` is the union. The first primary write to a key
 *   retires memory's copy, so a stale copy can never reappear.
 * `close()` closes the memory backend, not `primary` (its owner closes it).
 */
export function withFallback(
  primary: StoreBackend,
  breaker: Breaker,
  options: FallbackOptions,
): DegradableBackend {
  const memory = createMemoryBackend();
  const log = options.logger.child({ component: 'store' });
  const gauge = new Gauge({
    name: 'eoa_store_degraded',
    help: '1 while shared-state records are kept in process memory because the store is down.',
    registers: [options.registry],
  });
  gauge.set(0);

  let degraded = false;
  /** When the last degradation ended, on `performance.now()`'s clock. */
  let endedAt = -Infinity;
  /** The last write failed: a read answered since does not end the degradation. */
  let writesFailing = false;
  let probing: NodeJS.Timeout | undefined;
  let probeRunning = false;
  /** Closed (a reload switched stores): a call still failing here starts no probe. */
  let closed = false;
  const probe = (): void => {
    // An open breaker refuses it; closing (after its own probe, or this one as its trial call
    // when half-open) ends the degradation.
    if (!degraded || probeRunning || breaker.state() === 'open') return;
    probeRunning = true;
    attempt(
      () => primary.set(PROBE_KEY, '1', PROBE_TTL_MS),
      () => Promise.resolve(),
    )
      .catch(() => undefined)
      .finally(() => {
        probeRunning = false;
      });
  };
  const stopProbing = (): void => {
    clearInterval(probing);
    probing = undefined;
  };
  const enter = (error: unknown): void => {
    if (degraded) return;
    degraded = true;
    gauge.set(1);
    if (!closed) {
      probing = setInterval(probe, options.probeEveryMs ?? 1_000);
      probing.unref();
    }
    const reason = error instanceof StoreUnavailableError ? error.reason : 'failure';
    log.warn(
      { breaker: breaker.name, reason },
      'store unavailable: replay marks and refresh coordination now kept in process memory',
    );
  };
  const leave = (): void => {
    if (!degraded) return;
    degraded = false;
    stopProbing();
    endedAt = performance.now();
    gauge.set(0);
    log.info({ breaker: breaker.name }, 'store recovered: using the shared store again');
  };
  const unsubscribe = breaker.onStateChange((state) => {
    // An open breaker sends every call here to memory, whichever calls opened it (a server
    // session's reads count too): degraded from now, not from the next call made here.
    if (state === 'open') enter(refusedStore(0));
    if (state !== 'closed') return;
    endedAt = performance.now();
    writesFailing = false;
    leave();
  });

  /**
   * `onPrimary` through the breaker, else `onFallback`. After a failed write, degradation ends
   * on a write that reached the store (or the breaker closing), not on a read: a store that
   * answers reads but refuses writes (a master with too few replicas for `replicaAcks`) is still
   * one whose locks and marks other replicas cannot see.
   */
  async function attempt<T>(
    onPrimary: () => Promise<T>,
    onFallback: () => Promise<T>,
    writes = true,
  ): Promise<T> {
    let result: T;
    const began = performance.now();
    try {
      result = await breaker.run(onPrimary, refusedStore);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) && !isOutage(error)) throw error;
      // Only this request ran out of time: it falls back, the store is not taken for down.
      if (isRequestDeadline(error)) return onFallback();
      // Sent before the store was found back (a probe or a call held through the outage): its
      // failure is the outage that ended, not a new one.
      if (began < endedAt) return onFallback();
      enter(error);
      if (writes) writesFailing = true;
      return onFallback();
    }
    if (writes) writesFailing = false;
    if (degraded && !writesFailing && breaker.state() === 'closed') leave();
    return result;
  }

  return {
    degraded: () => degraded || breaker.state() !== 'closed',
    msSinceDegraded: () =>
      degraded || breaker.state() !== 'closed' ? 0 : performance.now() - endedAt,
    get: (key, bound) =>
      timedOutBefore(bound)
        ? memory.get(key)
        : attempt(
            async () => (await primary.get(key, bound)) ?? memory.get(key),
            () => memory.get(key),
            false,
          ),
    set: (key, value, ttlMs) =>
      attempt(
        async () => {
          await primary.set(key, value, ttlMs);
          await memory.delete(key);
        },
        () => memory.set(key, value, ttlMs),
      ),
    async setIfAbsent(key, value, ttlMs) {
      // A key memory holds (taken during an outage) is refused in either mode, without asking
      // the primary: such a refusal says nothing about the primary's health.
      if ((await memory.get(key)) !== undefined) return false;
      return attempt(
        () => primary.setIfAbsent(key, value, ttlMs),
        () => memory.setIfAbsent(key, value, ttlMs),
      );
    },
    delete: (key) =>
      attempt(
        () => either(primary.delete(key), () => memory.delete(key)),
        () => memory.delete(key),
      ),
    deleteIfEquals: (key, value) =>
      attempt(
        () => either(primary.deleteIfEquals(key, value), () => memory.deleteIfEquals(key, value)),
        () => memory.deleteIfEquals(key, value),
      ),
    take: (key) =>
      attempt(
        async () => (await primary.take(key)) ?? memory.take(key),
        () => memory.take(key),
      ),
    expireIfEquals: (key, value, ttlMs) =>
      attempt(
        () =>
          either(primary.expireIfEquals(key, value, ttlMs), () =>
            memory.expireIfEquals(key, value, ttlMs),
          ),
        () => memory.expireIfEquals(key, value, ttlMs),
      ),
    addMember: (key, member, ttlMs) =>
      attempt(
        () => primary.addMember(key, member, ttlMs),
        () => memory.addMember(key, member, ttlMs),
      ),
    members: (key) =>
      attempt(
        async () => {
          const [fromPrimary, fromMemory] = [await primary.members(key), await memory.members(key)];
          return fromMemory.length === 0
            ? fromPrimary
            : [...new Set([...fromPrimary, ...fromMemory])];
        },
        () => memory.members(key),
        false,
      ),
    removeMember: (key, member) =>
      attempt(
        () => either(primary.removeMember(key, member), () => memory.removeMember(key, member)),
        () => memory.removeMember(key, member),
      ),
    async close() {
      closed = true;
      unsubscribe();
      stopProbing();
      await memory.close();
    },
  };
}
