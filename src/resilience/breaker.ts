/** One circuit breaker (opossum) around one dependency: counts outages, fails fast while open. */
import CircuitBreaker from 'opossum';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { BreakerSeries } from './breaker-metrics.ts';
import { isOutage, isRequestDeadline, isUnreplicated } from './outage.ts';

/** Where a breaker stands. `half_open`: one probe call is let through to test the dependency. */
export type BreakerState = 'closed' | 'half_open' | 'open';

/**
 * Tuning of a breaker: the validated `breakers.store` / `breakers.idp` block of the config, where
 * the defaults are. Per-call deadlines belong to the callers, which already time out.
 */
export type BreakerTuning = Config['breakers']['store'];

/**
 * Buckets the rolling window is counted in; opossum rotates one every `rollingWindow / 10` ms,
 * which is why the schema wants a window of at least 10 ms.
 */
const ROLLING_BUCKETS = 10;

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
  /**
   * Opens the breaker now, when a deliberate health check has shown the dependency down (one
   * failed probe says more than one failed call); no effect unless closed or half-open.
   * `reason` goes into the line that logs the opening.
   */
  trip(reason?: string): void;
  /**
   * Runs the probe now rather than at the end of `resetTimeout`, when something has shown the
   * dependency back (the store's connection was re-established, after a failover): closes the
   * breaker if the probe answers. No effect while closed, without a probe, or while one runs.
   */
  probeNow(): void;
  /**
   * Applies new tuning (a config reload): `resetTimeout` and `errorThresholdPercentage` take
   * effect at once; `volumeThreshold` and `rollingWindow` are fixed when the breaker is built, so
   * those that differ are returned (the caller says they need a restart) and left unchanged.
   */
  retune(next: BreakerTuning): readonly (keyof BreakerTuning)[];
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

/** Builds one breaker. */
export function createBreaker(initial: BreakerTuning, deps: BreakerDeps): Breaker {
  let tuning = initial;
  const now = deps.now ?? Date.now;
  const { name, series, openError, probe } = deps;
  const log = deps.logger.child({ component: 'breaker', breaker: name });
  // opossum keeps this very object and reads `resetTimeout` and `errorThresholdPercentage` from
  // it on every decision, which is what lets {@link Breaker.retune} change them.
  const circuitOptions: CircuitBreaker.Options<[Call]> = {
    name,
    timeout: false,
    resetTimeout: tuning.resetTimeout,
    errorThresholdPercentage: tuning.errorThresholdPercentage,
    volumeThreshold: tuning.volumeThreshold,
    rollingCountTimeout: tuning.rollingWindow,
    rollingCountBuckets: ROLLING_BUCKETS,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    // opossum's filter answers "ignore this error"; verdicts are ignored, outages counted, except
    // a write too few replicas confirmed: the store is up and still serves reads; and a call its
    // request had no time left for, which says nothing about the dependency.
    errorFilter: (error: unknown) =>
      !isOutage(error) || isUnreplicated(error) || isRequestDeadline(error),
  };
  const circuit = new CircuitBreaker<[Call], unknown>((call) => call(), circuitOptions);

  let current: BreakerState = 'closed';
  let openedAt = 0;
  let outageStartedAt = 0;
  /** Why {@link Breaker.trip} opened it, for the opening's log line. */
  let tripReason: string | undefined;
  /** A probe started by {@link Breaker.probeNow} has not answered yet. */
  let probingNow = false;
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
        {
          state: next,
          previous,
          failures,
          calls: fires,
          retryInMs: tuning.resetTimeout,
          ...(tripReason === undefined ? {} : { reason: tripReason }),
        },
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
    current === 'open' ? Math.max(0, openedAt + tuning.resetTimeout - now()) : 0;

  function run<T>(call: () => Promise<T>, refusal = openError): Promise<T> {
    return (circuit.fire(call) as Promise<T>).catch((error: unknown) => {
      throw isRefusal(error) ? refusal(retryAfterMs()) : error;
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
    trip(reason) {
      if (current === 'open') return;
      tripReason = reason;
      circuit.open();
      tripReason = undefined;
    },
    probeNow() {
      if (current === 'closed' || probe === undefined || probingNow) return;
      probingNow = true;
      // Outside the circuit, which refuses calls while open: only a success acts on it.
      probe()
        .then(
          () => {
            if (current !== 'closed') circuit.close();
          },
          () => undefined,
        )
        .finally(() => {
          probingNow = false;
        });
    },
    retune(next) {
      const fixed = (['volumeThreshold', 'rollingWindow'] as const).filter(
        (key) => next[key] !== initial[key],
      );
      circuitOptions.resetTimeout = next.resetTimeout;
      circuitOptions.errorThresholdPercentage = next.errorThresholdPercentage;
      tuning = {
        ...next,
        volumeThreshold: initial.volumeThreshold,
        rollingWindow: initial.rollingWindow,
      };
      return fixed;
    },
    shutdown() {
      listeners.clear();
      circuit.shutdown();
    },
  };
}
