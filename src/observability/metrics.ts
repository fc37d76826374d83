/** Prometheus metrics on a registry of our own; label values are bounded (apps, verdicts, reasons). */
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type HistogramConfiguration,
} from 'prom-client';
import type { DropReason } from './otlp-exporter.ts';

/**
 * The refresh counters of one app. The refresh coordinator's `RefreshMetrics` port, written out
 * here so that this layer depends on no domain; the composition root checks that they match.
 */
export interface RefreshSeries {
  grant(
    outcome:
      'ok' | 'invalid_grant' | 'invalid_grant_unconfirmed' | 'unavailable' | 'id_token_invalid',
  ): void;
  follower(source: 'process' | 'replica' | 'late'): void;
  lockWait(): void;
  gated(gate: 'budget' | 'concurrency' | 'store'): void;
}

/** The bearer counters of one app: the bearer authenticator's `BearerMetrics` port. */
export interface BearerSeries {
  verification(kind: 'jwt' | 'introspection', outcome: 'valid' | 'invalid' | 'unavailable'): void;
  cache(result: 'hit' | 'miss'): void;
  throttled(): void;
}

/** A counter of one app by outcome: the callback step's `LoginMetrics` port. */
export interface OutcomeSeries<O extends string> {
  finished(outcome: O): void;
}

/** The children of `counter` under the `leading` label values, one per value of its last label. */
function childrenOf<const V extends string>(
  counter: Counter,
  leading: readonly string[],
  values: readonly V[],
): Record<V, Counter.Internal> {
  const children = {} as Record<V, Counter.Internal>;
  for (const value of values) children[value] = counter.labels(...leading, value);
  return children;
}

/**
 * The components `eoa_ready` reports besides `config`, read when the registry is scraped: each
 * app's discovery (`discovery:<app>`) and, when one is configured, the store.
 */
export type ReadinessSource = () => Iterable<readonly [component: string, ready: boolean]>;

/** Provider endpoints timed by `eoa_provider_request_duration_seconds`. */
export type ProviderEndpoint =
  | 'discovery'
  | 'jwks'
  | 'token'
  | 'pushed_authorization'
  | 'userinfo'
  | 'revocation'
  | 'introspection';
const providerEndpoints: readonly ProviderEndpoint[] = [
  'discovery',
  'jwks',
  'token',
  'pushed_authorization',
  'userinfo',
  'revocation',
  'introspection',
];

/** Store operations (the store port's) timed by `eoa_store_command_duration_seconds`. */
export type StoreOperation =
  | 'get'
  | 'set'
  | 'setIfAbsent'
  | 'delete'
  | 'deleteIfEquals'
  | 'take'
  | 'expireIfEquals'
  | 'addMember'
  | 'members'
  | 'removeMember';
const storeOperations: readonly StoreOperation[] = [
  'get',
  'set',
  'setIfAbsent',
  'delete',
  'deleteIfEquals',
  'take',
  'expireIfEquals',
  'addMember',
  'members',
  'removeMember',
];

/** One cell of `histogram` per value of its one label, bound at start. */
function cellsOf<L extends string, const V extends string>(
  histogram: CellHistogram<L>,
  label: L,
  values: readonly V[],
): Record<V, DurationCell> {
  const cells = {} as Record<V, DurationCell>;
  for (const value of values)
    cells[value] = histogram.cell({ [label]: value } as unknown as Record<L, string>);
  return cells;
}

/** The label used for requests no app claimed. */
export const noAppLabel = '-';

/**
 * A counter child counted in a plain number on the hot path and handed to prom-client when
 * the registry is read (its `collect`): a bound prom-client child still hashes its labels and
 * validates them on every call.
 */
class PendingCount {
  pending = 0;
  readonly #child: Counter.Internal;

  constructor(child: Counter.Internal) {
    this.#child = child;
  }

  flush(): void {
    if (this.pending === 0) return;
    this.#child.inc(this.pending);
    this.pending = 0;
  }
}

/** The durations of one set of label values, as prom-client's histogram keeps them. */
class DurationCell {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per finite bucket (not cumulative). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(labels: Readonly<Record<string, string>>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count += 1;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        this.counts[i]! += 1;
        return;
      }
    }
  }
}

/** One value of a histogram as prom-client's registry formats it. */
interface HistogramValue {
  readonly labels: Record<string, string | number>;
  readonly sharedLabels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName: string;
  /** `null` on buckets and present but `undefined` on sum and count, as prom-client has it. */
  readonly exemplar: null | undefined;
}

/**
 * A histogram with one cell per set of label values, bound once and observed directly (no
 * label hashing per observation): `eoa_check_duration_seconds` per (app, verdict), the provider
 * and store latencies. It is a prom-client Histogram to the registry, and reports exactly what
 * one fed with the same observations would (same series, order, cumulative buckets, sum and
 * count): only the values come from the cells.
 */
class CellHistogram<L extends string> extends Histogram<L> {
  readonly #name: string;
  readonly #help: string;
  readonly #bounds: readonly number[];
  readonly #cells: DurationCell[] = [];

  constructor(config: HistogramConfiguration<L> & { buckets: number[] }) {
    super(config);
    this.#name = config.name;
    this.#help = config.help;
    this.#bounds = Object.freeze([...config.buckets]);
  }

  cell(labels: Readonly<Record<L, string>>): DurationCell {
    const cell = new DurationCell(labels, this.#bounds);
    this.#cells.push(cell);
    return cell;
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor resets before this class's fields exist.
    if (!(#cells in this)) return;
    for (const cell of this.#cells) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }

  /** What the registry reads (prom-client's own `get()` builds on it). */
  getForPromString(): Promise<{
    name: string;
    help: string;
    type: string;
    values: HistogramValue[];
    aggregator: string;
  }> {
    const bucket = `${this.#name}_bucket`;
    const values: HistogramValue[] = [];
    for (const { labels: sharedLabels, counts, sum, count } of this.#cells) {
      if (count === 0) continue;
      const add = (
        labels: HistogramValue['labels'],
        metricName: string,
        value: number,
        exemplar: HistogramValue['exemplar'],
      ): void => {
        values.push({ labels, sharedLabels, value, metricName, exemplar });
      };
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += counts[i]!;
        add({ le: this.#bounds[i]! }, bucket, cumulative, null);
      }
      add({ le: '+Inf' }, bucket, count, null);
      add({}, `${this.#name}_sum`, sum, undefined);
      add({}, `${this.#name}_count`, count, undefined);
    }
    return Promise.resolve({
      name: this.#name,
      help: this.#help,
      type: 'histogram',
      values,
      aggregator: 'sum',
    });
  }
}

interface CheckChildren {
  readonly count: PendingCount;
  readonly duration: DurationCell;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #checks: Counter<'app' | 'verdict' | 'reason'>;
  readonly #duration: CellHistogram<'app' | 'verdict'>;
  readonly #providerCalls: Record<ProviderEndpoint, DurationCell>;
  readonly #storeCommands: Record<StoreOperation, DurationCell>;
  /** Checks being decided; the gauge reads it when scraped. */
  #inFlight = 0;
  readonly #errors: Counter;
  readonly #reloads: Counter<'result'>;
  /** Components set once (`config`); the others come from {@link watchReadiness}'s source. */
  readonly #fixedReadiness = new Map<string, boolean>();
  #readiness: ReadinessSource = () => [];
  readonly #refreshGrants: Counter<'app' | 'outcome'>;
  readonly #refreshFollowers: Counter<'app' | 'source'>;
  readonly #refreshLockWaits: Counter<'app'>;
  readonly #refreshGated: Counter<'app' | 'gate'>;
  readonly #bearerVerifications: Counter<'app' | 'kind' | 'outcome'>;
  readonly #bearerCache: Counter<'app' | 'result'>;
  readonly #bearerThrottled: Counter<'app'>;
  readonly #logins: Counter<'app' | 'outcome'>;
  readonly #spansDropped: Record<DropReason, Counter.Internal>;
  /** Children bound once per (app, verdict, reason); the set is bounded by the config. */
  readonly #children = new Map<string, CheckChildren>();
  readonly #durationCells = new Map<string, DurationCell>();
  /** Hot-path counts, by counter, handed to it when the registry reads it. */
  readonly #pendingChecks: PendingCount[] = [];
  readonly #pendingBearerCache: PendingCount[] = [];

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const flush = (counts: readonly PendingCount[]) => (): void => {
      for (const count of counts) count.flush();
    };
    this.#checks = new Counter({
      name: 'eoa_checks_total',
      help: 'Check decisions by app, verdict and reason.',
      labelNames: ['app', 'verdict', 'reason'],
      registers,
      collect: flush(this.#pendingChecks),
    });
    this.#duration = new CellHistogram({
      name: 'eoa_check_duration_seconds',
      help: 'Time to decide one Check, from request decoded to response built.',
      labelNames: ['app', 'verdict'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.2, 1, 5],
      registers,
    });
    const inFlight = (): number => this.#inFlight;
    new Gauge({
      name: 'eoa_checks_in_flight',
      help: 'Checks being decided right now.',
      registers,
      collect() {
        this.set(inFlight());
      },
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
    const readiness = (): Iterable<readonly [string, boolean]> => [
      ...this.#fixedReadiness,
      ...this.#readiness(),
    ];
    new Gauge({
      name: 'eoa_ready',
      help: "1 when a component is ready, else 0: config, discovery:<app> (that app's provider discovery answered), store (Redis connected and not degraded).",
      labelNames: ['component'],
      registers,
      collect() {
        // Apps come and go with reloads: only the current ones are reported.
        this.reset();
        for (const [component, ready] of readiness()) this.set({ component }, ready ? 1 : 0);
      },
    });
    this.#refreshGrants = new Counter({
      name: 'eoa_refresh_grants_total',
      help: 'Refresh-token grants at the provider by outcome (ok, invalid_grant, invalid_grant_unconfirmed: refused while the lock was not shared, session kept, unavailable, id_token_invalid: granted, but the new ID token failed verification).',
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
      help: 'Refreshes not attempted because a gate was closed (budget, concurrency, store: waiting for a degraded store).',
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
      collect: flush(this.#pendingBearerCache),
    });
    this.#bearerThrottled = new Counter({
      name: 'eoa_bearer_throttled_total',
      help: 'Bearer requests refused with 429 because their client address failed too often.',
      labelNames: ['app'],
      registers,
    });
    const providerCalls = new CellHistogram<'endpoint'>({
      name: 'eoa_provider_request_duration_seconds',
      help: 'Time of one call to an identity provider, by endpoint (discovery, jwks, token, revocation, introspection), answered or failed; calls refused by an open breaker are not timed.',
      labelNames: ['endpoint'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#providerCalls = cellsOf(providerCalls, 'endpoint', providerEndpoints);
    const storeCommands = new CellHistogram<'operation'>({
      name: 'eoa_store_command_duration_seconds',
      help: 'Time of one Redis store operation, by operation (get, set, take, …), answered or failed.',
      labelNames: ['operation'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2],
      registers,
    });
    this.#storeCommands = cellsOf(storeCommands, 'operation', storeOperations);
    this.#logins = new Counter({
      name: 'eoa_logins_total',
      help: 'Callbacks by how the login ended: ok, or the cause of the failure (provider_refused, state, clock_skew, token_refused, provider_unavailable, id_token, store_unavailable, session_too_large, internal).',
      labelNames: ['app', 'outcome'],
      registers,
    });
    const spansDropped = new Counter({
      name: 'eoa_trace_spans_dropped_total',
      help: 'Trace spans not exported, by reason (queue_full: the export queue was full; export_failed: the collector did not take them in time).',
      labelNames: ['reason'],
      registers,
    });
    this.#spansDropped = childrenOf(spansDropped, [], ['queue_full', 'export_failed']);
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'eoa_' });
  }

  checkStarted(): void {
    this.#inFlight += 1;
  }

  /** A Check that ended without a decision (an error went back to Envoy). */
  checkAborted(): void {
    this.#inFlight -= 1;
    this.#errors.inc();
  }

  /**
   * Records a finished Check: `verdict` is what it did for the user (`allow`, `deny`, …), `reason`
   * why (both bounded sets, metric labels), `seconds` its decision time.
   */
  checkFinished(app: string | undefined, verdict: string, reason: string, seconds: number): void {
    this.#inFlight -= 1;
    const children = this.#childrenFor(app ?? noAppLabel, verdict, reason);
    children.count.pending += 1;
    children.duration.observe(seconds);
  }

  #pendingCount(child: Counter.Internal, into: PendingCount[]): PendingCount {
    const count = new PendingCount(child);
    into.push(count);
    return count;
  }

  configReloaded(ok: boolean): void {
    this.#reloads.inc({ result: ok ? 'ok' : 'rejected' });
  }

  /** The refresh counters of one app, children bound once. */
  refreshMetrics(app: string): RefreshSeries {
    const grants = childrenOf(
      this.#refreshGrants,
      [app],
      ['ok', 'invalid_grant', 'invalid_grant_unconfirmed', 'unavailable', 'id_token_invalid'],
    );
    const followers = childrenOf(this.#refreshFollowers, [app], ['process', 'replica', 'late']);
    const gated = childrenOf(this.#refreshGated, [app], ['budget', 'concurrency', 'store']);
    const lockWaits = this.#refreshLockWaits.labels(app);
    return {
      grant: (outcome) => grants[outcome].inc(),
      follower: (source) => followers[source].inc(),
      lockWait: () => lockWaits.inc(),
      gated: (gate) => gated[gate].inc(),
    };
  }

  /** The bearer counters of one app, children bound once. */
  bearerMetrics(app: string): BearerSeries {
    const outcomes = ['valid', 'invalid', 'unavailable'] as const;
    const verifications = {
      jwt: childrenOf(this.#bearerVerifications, [app, 'jwt'], outcomes),
      introspection: childrenOf(this.#bearerVerifications, [app, 'introspection'], outcomes),
    };
    const cache = {
      hit: this.#pendingCount(this.#bearerCache.labels(app, 'hit'), this.#pendingBearerCache),
      miss: this.#pendingCount(this.#bearerCache.labels(app, 'miss'), this.#pendingBearerCache),
    };
    const throttled = this.#bearerThrottled.labels(app);
    return {
      verification: (kind, outcome) => verifications[kind][outcome].inc(),
      cache: (result) => {
        cache[result].pending += 1;
      },
      throttled: () => throttled.inc(),
    };
  }

  /**
   * The login counter of one app, a child bound once per outcome. The outcomes are the callback
   * step's (`loginOutcomes`): this layer depends on no domain.
   */
  loginMetrics<const O extends string>(app: string, outcomes: readonly O[]): OutcomeSeries<O> {
    const children = childrenOf(this.#logins, [app], outcomes);
    return { finished: (outcome) => children[outcome].inc() };
  }

  /** A finished call to a provider's `endpoint`. */
  providerCallFinished(endpoint: ProviderEndpoint, seconds: number): void {
    this.#providerCalls[endpoint].observe(seconds);
  }

  /** Trace spans that were not exported. */
  traceSpansDropped(reason: DropReason, count: number): void {
    this.#spansDropped[reason].inc(count);
  }

  /** A finished store operation. */
  storeCommandFinished(operation: StoreOperation, seconds: number): void {
    this.#storeCommands[operation].observe(seconds);
  }

  setReady(component: string, ready: boolean): void {
    this.#fixedReadiness.set(component, ready);
  }

  /** Where `eoa_ready` reads the components that change on their own; replaces the last one. */
  watchReadiness(source: ReadinessSource): void {
    this.#readiness = source;
  }

  /** One cell per (app, verdict), shared by that pair's reasons. */
  #durationCell(app: string, verdict: string): DurationCell {
    const key = `${app}\u0000${verdict}`;
    let cell = this.#durationCells.get(key);
    if (cell === undefined) {
      cell = this.#duration.cell({ app, verdict });
      this.#durationCells.set(key, cell);
    }
    return cell;
  }

  #childrenFor(app: string, verdict: string, reason: string): CheckChildren {
    const key = `${app}\u0000${verdict}\u0000${reason}`;
    let children = this.#children.get(key);
    if (children === undefined) {
      children = {
        count: this.#pendingCount(this.#checks.labels(app, verdict, reason), this.#pendingChecks),
        duration: this.#durationCell(app, verdict),
      };
      this.#children.set(key, children);
    }
    return children;
  }
}
