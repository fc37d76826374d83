/** Prometheus metrics on a registry of our own; label values are bounded (apps, verdicts, reasons). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Verdict } from '../authz/verdict.ts';
import type { RefreshMetrics } from '../oidc/refresh-coordinator.ts';
import type {
  BearerMetrics,
  VerificationKind,
  VerificationOutcome,
} from '../authz/bearer-authenticator.ts';

/** The label used for requests no app claimed. */
export const noAppLabel = '-';

interface CheckChildren {
  readonly count: Counter.Internal;
  readonly duration: Histogram.Internal<'app' | 'verdict'>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #checks: Counter<'app' | 'verdict' | 'reason'>;
  readonly #duration: Histogram<'app' | 'verdict'>;
  readonly #inFlight: Gauge;
  readonly #errors: Counter;
  readonly #reloads: Counter<'result'>;
  readonly #ready: Gauge<'component'>;
  readonly #refreshGrants: Counter<'app' | 'outcome'>;
  readonly #refreshFollowers: Counter<'app' | 'source'>;
  readonly #refreshLockWaits: Counter<'app'>;
  readonly #refreshGated: Counter<'app' | 'gate'>;
  readonly #bearerVerifications: Counter<'app' | 'kind' | 'outcome'>;
  readonly #bearerCache: Counter<'app' | 'result'>;
  readonly #bearerThrottled: Counter<'app'>;
  /** Children bound once per (app, verdict, reason); the set is bounded by the config. */
  readonly #children = new Map<string, CheckChildren>();

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.#checks = new Counter({
      name: 'eoa_checks_total',
      help: 'Check decisions by app, verdict and reason.',
      labelNames: ['app', 'verdict', 'reason'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'eoa_check_duration_seconds',
      help: 'Time to decide one Check, from request decoded to response built.',
      labelNames: ['app', 'verdict'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.2, 1, 5],
      registers,
    });
    this.#inFlight = new Gauge({
      name: 'eoa_checks_in_flight',
      help: 'Checks being decided right now.',
      registers,
    });
    this.#errors = new Counter({
      name: 'eoa_check_errors_total',
      help: 'Checks answered with a gRPC error because no decision could be made.',
      registers,
    });
    this.#reloads = new Counter({
      name: 'eoa_config_reloads_total',
      help: 'Configuration reloads by result (ok, rejected).',
      labelNames: ['result'],
      registers,
    });
    this.#ready = new Gauge({
      name: 'eoa_ready',
      help: '1 when a component is ready (config, an app discovery, the store), else 0.',
      labelNames: ['component'],
      registers,
    });
    this.#refreshGrants = new Counter({
      name: 'eoa_refresh_grants_total',
      help: 'Refresh-token grants at the provider by outcome (ok, invalid_grant, unavailable).',
      labelNames: ['app', 'outcome'],
      registers,
    });
    this.#refreshFollowers = new Counter({
      name: 'eoa_refresh_followers_total',
      help: 'Refreshes served without a grant of their own: in this process, from another replica, or late arrivals with the old cookie.',
      labelNames: ['app', 'source'],
      registers,
    });
    this.#refreshLockWaits = new Counter({
      name: 'eoa_refresh_lock_waits_total',
      help: "Refreshes that found another replica's lock and waited for its result.",
      labelNames: ['app'],
      registers,
    });
    this.#refreshGated = new Counter({
      name: 'eoa_refresh_gated_total',
      help: 'Refreshes not attempted because a gate was closed (budget, concurrency).',
      labelNames: ['app', 'gate'],
      registers,
    });
    this.#bearerVerifications = new Counter({
      name: 'eoa_bearer_verifications_total',
      help: 'Bearer tokens verified (signature or introspection, not cache hits) by kind (jwt, introspection) and outcome (valid, invalid, unavailable).',
      labelNames: ['app', 'kind', 'outcome'],
      registers,
    });
    this.#bearerCache = new Counter({
      name: 'eoa_bearer_cache_total',
      help: 'Bearer token cache lookups by result (hit, miss).',
      labelNames: ['app', 'result'],
      registers,
    });
    this.#bearerThrottled = new Counter({
      name: 'eoa_bearer_throttled_total',
      help: 'Bearer requests refused with 429 because their client address failed too often.',
      labelNames: ['app'],
      registers,
    });
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'eoa_' });
  }

  checkStarted(): void {
    this.#inFlight.inc();
  }

  /** A Check that ended without a decision (an error went back to Envoy). */
  checkAborted(): void {
    this.#inFlight.dec();
    this.#errors.inc();
  }

  /** Records a finished Check; `seconds` is its decision time. */
  checkFinished(app: string | undefined, verdict: Verdict, seconds: number): void {
    this.#inFlight.dec();
    const children = this.#childrenFor(app ?? noAppLabel, verdict);
    children.count.inc();
    children.duration.observe(seconds);
  }

  configReloaded(ok: boolean): void {
    this.#reloads.inc({ result: ok ? 'ok' : 'rejected' });
  }

  /** The refresh counters of one app, children bound once. */
  refreshMetrics(app: string): RefreshMetrics {
    const grants = {
      ok: this.#refreshGrants.labels(app, 'ok'),
      invalid_grant: this.#refreshGrants.labels(app, 'invalid_grant'),
      unavailable: this.#refreshGrants.labels(app, 'unavailable'),
    };
    const followers = {
      process: this.#refreshFollowers.labels(app, 'process'),
      replica: this.#refreshFollowers.labels(app, 'replica'),
      late: this.#refreshFollowers.labels(app, 'late'),
    };
    const gated = {
      budget: this.#refreshGated.labels(app, 'budget'),
      concurrency: this.#refreshGated.labels(app, 'concurrency'),
    };
    const lockWaits = this.#refreshLockWaits.labels(app);
    return {
      grant: (outcome) => grants[outcome].inc(),
      follower: (source) => followers[source].inc(),
      lockWait: () => lockWaits.inc(),
      gated: (gate) => gated[gate].inc(),
    };
  }

  /** The bearer counters of one app, children bound once. */
  bearerMetrics(app: string): BearerMetrics {
    const kinds: readonly VerificationKind[] = ['jwt', 'introspection'];
    const outcomes: readonly VerificationOutcome[] = ['valid', 'invalid', 'unavailable'];
    const verifications = new Map<string, Counter.Internal>();
    for (const kind of kinds) {
      for (const outcome of outcomes) {
        verifications.set(
          `${kind}:${outcome}`,
          this.#bearerVerifications.labels(app, kind, outcome),
        );
      }
    }
    const cache = {
      hit: this.#bearerCache.labels(app, 'hit'),
      miss: this.#bearerCache.labels(app, 'miss'),
    };
    const throttled = this.#bearerThrottled.labels(app);
    return {
      verification: (kind, outcome) => verifications.get(`${kind}:${outcome}`)?.inc(),
      cache: (result) => cache[result].inc(),
      throttled: () => throttled.inc(),
    };
  }

  setReady(component: string, ready: boolean): void {
    this.#ready.set({ component }, ready ? 1 : 0);
  }

  #childrenFor(app: string, verdict: Verdict): CheckChildren {
    const key = `${app}\u0000${verdict.kind}\u0000${verdict.reason}`;
    let children = this.#children.get(key);
    if (children === undefined) {
      children = {
        count: this.#checks.labels(app, verdict.kind, verdict.reason),
        duration: this.#duration.labels(app, verdict.kind),
      };
      this.#children.set(key, children);
    }
    return children;
  }
}
