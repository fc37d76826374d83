/** Prometheus series for circuit breakers: state, opens, fast rejects and counted failures. */
import { Counter, Gauge, type Registry } from 'prom-client';

/** A breaker's state as exported: 0 closed, 1 half-open, 2 open. */
const breakerStateValue = { closed: 0, half_open: 1, open: 2 } as const;

/** The series of one breaker, bound once so recording costs no label lookup. */
export interface BreakerSeries {
  setState(state: keyof typeof breakerStateValue): void;
  opened(): void;
  rejected(): void;
  failed(): void;
}

/**
 * Registers `eoa_breaker_state`, `eoa_breaker_opens_total`, `eoa_breaker_rejects_total` and
 * `eoa_breaker_failures_total` (label `breaker`) on `registry`; call once per registry. Returns
 * what binds the series of one breaker, each starting at 0 (closed).
 */
export function createBreakerMetrics(registry: Registry): (name: string) => BreakerSeries {
  const registers = [registry];
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames: ['breaker'], registers });
  const state = new Gauge({
    name: 'eoa_breaker_state',
    help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open.',
    labelNames: ['breaker'],
    registers,
  });
  const opens = counter(
    'eoa_breaker_opens_total',
    'Times a closed circuit breaker opened (an outage began); failed probes are not counted.',
  );
  const rejects = counter(
    'eoa_breaker_rejects_total',
    'Calls refused without trying because the circuit breaker was open.',
  );
  const failures = counter(
    'eoa_breaker_failures_total',
    'Calls that failed with an outage (verdicts such as invalid_grant are not counted).',
  );
  return (name) => {
    const labels = { breaker: name };
    const stateChild = state.labels(labels);
    const opensChild = opens.labels(labels);
    const rejectsChild = rejects.labels(labels);
    const failuresChild = failures.labels(labels);
    stateChild.set(breakerStateValue.closed);
    // Zero increments make the series visible before the first event, so rates work at once.
    opensChild.inc(0);
    rejectsChild.inc(0);
    failuresChild.inc(0);
    return {
      setState: (value) => stateChild.set(breakerStateValue[value]),
      opened: () => opensChild.inc(),
      rejected: () => rejectsChild.inc(),
      failed: () => failuresChild.inc(),
    };
  };
}
