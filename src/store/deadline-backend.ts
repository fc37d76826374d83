/** Store calls that never hold a request longer than its budget, and a hung store found within one. */
import { performance } from 'node:perf_hooks';
import { StoreUnavailableError } from '../errors.ts';
import type { CallBound, StoreBackend } from './store-backend.ts';

/**
 * What a request keeps of its time to answer once a store call gave up on its behalf, ms (as a
 * step keeps for its own waits): the fallback, and the rest of the decision, still fit in it.
 */
export const CALL_ANSWER_RESERVE_MS = 5;

/** Options for {@link withDeadline}. */
export interface DeadlineOptions {
  /**
   * The longest a call may take, in ms, read on every call (a reload may change it). A Check
   * waits on store calls within `request.budget`, so this is a fraction of it: a hung Redis
   * answers nothing, and `commandTimeout` (whole seconds) would hold every Check that long.
   */
  readonly timeoutMs: () => number;
  /**
   * Told once per call that ran out of time, with no call outstanding for it: the owner checks
   * whether the store is hung (a probe within the same deadline) and opens its breaker if so.
   */
  readonly onTimeout: () => void;
  /** The clock of {@link CallBound} deadlines; default `performance.now`. */
  readonly now?: () => number;
}

/**
 * Bounds every call of `primary`: a call not answered within `timeoutMs()` rejects with
 * {@link StoreUnavailableError} (`timeout`), an outage, so the decorators above it fall back to
 * memory or answer 503 at once. A call with a {@link CallBound} also gives up
 * {@link CALL_ANSWER_RESERVE_MS} before its request's deadline (`request_deadline`: the request
 * falls back, the store is not suspected), and marks the bound when it runs out of time. The command itself still runs to its own `commandTimeout`, and
 * what it does then is as if it had been answered late: a write may land. `close()` closes
 * nothing (the owner closes `primary`).
 */
export function withDeadline(primary: StoreBackend, options: DeadlineOptions): StoreBackend {
  const now = options.now ?? (() => performance.now());
  const bounded = <T>(call: () => Promise<T>, bound?: CallBound): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      let timeoutMs = options.timeoutMs();
      // Cut short by the request's own deadline: the store has not been slow (yet), so the
      // request falls back alone, and no probe runs.
      let requestDeadline = false;
      if (bound !== undefined) {
        const left = bound.deadline - now() - CALL_ANSWER_RESERVE_MS;
        if (left < timeoutMs) {
          timeoutMs = Math.max(0, left);
          requestDeadline = true;
        }
      }
      const timer = setTimeout(() => {
        if (bound !== undefined) bound.storeTimedOut = true;
        reject(
          new StoreUnavailableError(requestDeadline ? 'request_deadline' : 'timeout', {
            retryAfterMs: 1_000,
          }),
        );
        if (!requestDeadline) options.onTimeout();
      }, timeoutMs);
      call().then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passed on as it came
          reject(error);
        },
      );
    });
  return {
    get: (key, bound) => bounded(() => primary.get(key), bound),
    set: (key, value, ttlMs) => bounded(() => primary.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => bounded(() => primary.setIfAbsent(key, value, ttlMs)),
    delete: (key) => bounded(() => primary.delete(key)),
    deleteIfEquals: (key, value) => bounded(() => primary.deleteIfEquals(key, value)),
    take: (key) => bounded(() => primary.take(key)),
    expireIfEquals: (key, value, ttlMs) => bounded(() => primary.expireIfEquals(key, value, ttlMs)),
    addMember: (key, member, ttlMs) => bounded(() => primary.addMember(key, member, ttlMs)),
    members: (key) => bounded(() => primary.members(key)),
    removeMember: (key, member) => bounded(() => primary.removeMember(key, member)),
    close: () => Promise.resolve(),
  };
}

/**
 * Runs `probe` when a call timed out, one at a time: when the probe fails or also runs out of
 * `timeoutMs()`, `trip` is called (the store is hung or gone; open its breaker now rather than
 * after a rolling window of slow calls). A probe that answers in time means one slow command,
 * not a hung store: nothing trips.
 */
export function hungStoreDetector(options: {
  readonly probe: () => Promise<unknown>;
  readonly timeoutMs: () => number;
  readonly trip: () => void;
}): () => void {
  let probing = false;
  return () => {
    if (probing) return;
    probing = true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.timeoutMs());
    });
    Promise.race([options.probe().then(() => 'ok' as const), timedOut])
      .catch(() => 'failed' as const)
      .then((result) => {
        clearTimeout(timer);
        probing = false;
        if (result !== 'ok') options.trip();
      })
      .catch(() => undefined);
  };
}
