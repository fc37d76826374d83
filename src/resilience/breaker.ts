/** One circuit breaker (opossum) around one dependency: counts outages, fails fast while open. */
import CircuitBreaker from 'opossum';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../store/store-backend.ts';
import type { BreakerSeries } from './breaker-metrics.ts';
import { isOutage } from './outage.ts';

/** Where a breaker stands. `half_open`: one probe call is let through to test the dependency. */
export type BreakerState = 'closed' | 'half_open' | 'open';

/** Tuning of a breaker. Per-call deadlines belong to the callers, which already time out. */
export interface BreakerOptions {
  /** Percentage of failed calls in the rolling window above which the breaker opens. Default 50. */
  readonly errorThresholdPercentage?: number;
  /** Fewest calls in the rolling window before the breaker may open at all. Default 5. */
  readonly volumeThreshold?: number;
  /** Length of the rolling window the percentage is taken over, in ms. Default 10,000. */
  readonly rollingWindowMs?: number;
  /** Buckets the rolling window is divided into. Default 10. */
  readonly rollingBuckets?: number;
  /** How long the breaker stays open before letting one probe call through, in ms. Default 5,000. */
  readonly resetTimeoutMs?: number;
}

/** Breaker options with every default applied. */
export type ResolvedBreakerOptions = Required<BreakerOptions>;

const breakerDefaults: ResolvedBreakerOptions = Object.freeze({
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  rollingWindowMs: 10_000,
  rollingBuckets: 10,
  resetTimeoutMs: 5_000,
});

/**
 * Applies defaults and checks every option, reporting all problems at once in one `RangeError`
 * whose message names each option (prefixed with `path`, e.g. `breakers.store`).
 */
export function resolveBreakerOptions(
  options: BreakerOptions = {},
  path = 'breaker',
): ResolvedBreakerOptions {
  const resolved = { ...breakerDefaults, ...options };
  const problems: string[] = [];
  const check = (ok: boolean, option: keyof BreakerOptions, rule: string): void => {
    if (!ok) problems.push(`${path}.${option}: ${rule}, got ${String(resolved[option])}`);
  };
  const isPositiveInt = (n: number): boolean => Number.isInteger(n) && n > 0;
  check(
    Number.isFinite(resolved.errorThresholdPercentage) &&
      resolved.errorThresholdPercentage > 0 &&
      resolved.errorThresholdPercentage <= 100,
    'errorThresholdPercentage',
    'must be a number in (0, 100]',
  );
  check(
    Number.isInteger(resolved.volumeThreshold) && resolved.volumeThreshold >= 0,
    'volumeThreshold',
    'must be a non-negative integer',
  );
  check(isPositiveInt(resolved.rollingWindowMs), 'rollingWindowMs', 'must be a positive integer');
  check(isPositiveInt(resolved.rollingBuckets), 'rollingBuckets', 'must be a positive integer');
  if (isPositiveInt(resolved.rollingWindowMs) && isPositiveInt(resolved.rollingBuckets)) {
    // opossum rotates buckets every floor(window / buckets) ms; 0 would spin.
    check(
      resolved.rollingWindowMs >= resolved.rollingBuckets,
      'rollingBuckets',
      `must not exceed rollingWindowMs (${resolved.rollingWindowMs})`,
    );
  }
  check(isPositiveInt(resolved.resetTimeoutMs), 'resetTimeoutMs', 'must be a positive integer');
  if (problems.length > 0) throw new RangeError(`invalid breaker options:\n${problems.join('\n')}`);
  return Object.freeze(resolved);
}

/** A circuit breaker around one dependency. */
export interface Breaker {
  /** Bounded, URL-free name, used in logs and as the `breaker` metric label. */
  readonly name: string;
  /**
   * Runs `call` unless the breaker is open. Rejects with what `call` rejected with, or, when the
   * breaker refuses to try (open, or half-open with its probe in flight), at once with
   * `refusal(retryAfterMs)` when given, else with the breaker's own open error.
   */
  run<T>(call: () => Promise<T>, refusal?: (retryAfterMs: number) => Error): Promise<T>;
  /** The current state. */
  state(): BreakerState;
  /** While open, ms until the probe is let through; otherwise 0. */
  retryAfterMs(): number;
  /**
   * Calls `listener` once per state change, including every probe round (half-open, then open
   * or closed); returns the unsubscribe function.
   */
  onStateChange(listener: (state: BreakerState, previous: BreakerState) => void): () => void;
  /** Stops timers; further calls are refused. */
  shutdown(): void;
}

/** What a breaker is built with besides its tuning. */
export interface BreakerDeps {
  /** Bounded, URL-free name (e.g. `store`, `idp:shop:token`). */
  readonly name: string;
  readonly logger: Logger;
  /** This breaker's metric series. */
  readonly series: BreakerSeries;
  /** The error a refused call rejects with; given the ms until the next probe. */
  readonly openError: (retryAfterMs: number) => Error;
  /** Which rejections count as failures; default {@link isOutage} (verdicts never count). */
  readonly isFailure?: (error: unknown) => boolean;
  /**
   * A cheap call run through the breaker as soon as it goes half-open, so that it recovers
   * without waiting for traffic (a replica out of rotation gets none). Default: none.
   */
  readonly probe?: () => Promise<unknown>;
  /** For {@link Breaker.retryAfterMs}; opossum's own timers run on real time. Default `Date.now`. */
  readonly now?: Clock;
}

type Call = () => Promise<unknown>;

function isRefusal(error: unknown): boolean {
  if (!(error instanceof Error) || !CircuitBreaker.isOurError(error)) return false;
  const code = (error as { code?: unknown }).code;
  return code === 'EOPENBREAKER' || code === 'ESHUTDOWN';
}

/** Builds one breaker. Options are validated here (see {@link resolveBreakerOptions}). */
export function createBreaker(options: BreakerOptions, deps: BreakerDeps): Breaker {
  const tuning = resolveBreakerOptions(options, deps.name);
  const now = deps.now ?? Date.now;
  const isFailure = deps.isFailure ?? isOutage;
  const { name, series, openError, probe } = deps;
  const log = deps.logger.child({ component: 'breaker', breaker: name });
  const circuit = new CircuitBreaker<[Call], unknown>((call) => call(), {
    name,
    timeout: false,
    resetTimeout: tuning.resetTimeoutMs,
    errorThresholdPercentage: tuning.errorThresholdPercentage,
    volumeThreshold: tuning.volumeThreshold,
    rollingCountTimeout: tuning.rollingWindowMs,
    rollingCountBuckets: tuning.rollingBuckets,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    // opossum's filter answers "ignore this error"; verdicts are ignored, outages counted.
    errorFilter: (error: unknown) => !isFailure(error),
  });

  let current: BreakerState = 'closed';
  let openedAt = 0;
  let outageStartedAt = 0;
  const listeners = new Set<(state: BreakerState, previous: BreakerState) => void>();

  const transition = (next: BreakerState): void => {
    if (next === current) return;
    const previous = current;
    current = next;
    series.setState(next);
    if (next === 'open') openedAt = now();
    // One warning when an outage begins and one line when it ends; the probe rounds in between
    // (half-open, probe failed, open again every reset timeout) would repeat all outage long.
    if (previous === 'closed') {
      outageStartedAt = openedAt;
      series.opened();
      const { failures, fires } = circuit.stats;
      log.warn(
        { state: next, previous, failures, calls: fires, retryInMs: tuning.resetTimeoutMs },
        'circuit breaker opened: calls fail fast',
      );
    } else if (next === 'closed') {
      log.info(
        { state: next, previous, openForMs: now() - outageStartedAt },
        'circuit breaker closed: dependency recovered',
      );
    } else {
      log.debug(
        { state: next, previous },
        next === 'half_open' ? 'circuit breaker half-open: probing' : 'probe failed, still open',
      );
    }
    for (const listener of listeners) listener(next, previous);
    if (next === 'half_open' && probe !== undefined) {
      // Outside opossum's emit, so the probe takes the half-open slot after the state settled.
      setImmediate(() => {
        run(probe).catch(() => undefined);
      });
    }
  };

  circuit.on('open', () => transition('open'));
  circuit.on('halfOpen', () => transition('half_open'));
  circuit.on('close', () => transition('closed'));
  circuit.on('reject', () => series.rejected());
  circuit.on('failure', () => series.failed());

  const retryAfterMs = (): number =>
    current === 'open' ? Math.max(0, openedAt + tuning.resetTimeoutMs - now()) : 0;

  const translate = (error: unknown): never => {
    if (isRefusal(error)) throw openError(retryAfterMs());
    throw error;
  };

  function run<T>(call: () => Promise<T>, refusal?: (retryAfterMs: number) => Error): Promise<T> {
    const fired = circuit.fire(call) as Promise<T>;
    if (refusal === undefined) return fired.catch(translate);
    return fired.catch((error: unknown) => {
      if (isRefusal(error)) throw refusal(retryAfterMs());
      throw error;
    });
  }

  return {
    name,
    run,
    state: () => current,
    retryAfterMs,
    onStateChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    shutdown() {
      listeners.clear();
      circuit.shutdown();
    },
  };
}
