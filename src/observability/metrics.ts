/** Prometheus metrics on a registry of our own; label values are bounded (apps, verdicts, reasons). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Verdict } from '../authz/verdict.ts';

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
