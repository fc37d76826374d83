/** Breaker tuning as the config resolves it: the schema's defaults, with a test's overrides. */
import { configSchema } from '../../src/config/schema.ts';
import type { BreakerTuning } from '../../src/resilience/breaker.ts';

/** A `breakers.store` / `breakers.idp` block as written in a config file. */
export interface TuningInput {
  readonly errorThresholdPercentage?: number;
  readonly volumeThreshold?: number;
  readonly rollingWindow?: string;
  readonly resetTimeout?: string;
}

/** One breaker's tuning: `input` resolved by the config schema. */
export function breakerTuning(
  input: TuningInput = {},
  kind: 'store' | 'idp' = 'store',
): BreakerTuning {
  return configSchema.shape.breakers.parse({ [kind]: input })[kind];
}

/** Both tunings `createBreakers` takes; the schema's defaults unless given. */
export function breakersTuning(
  input: { readonly store?: TuningInput; readonly idp?: TuningInput } = {},
): { readonly store: BreakerTuning; readonly idp: BreakerTuning } {
  return { store: breakerTuning(input.store), idp: breakerTuning(input.idp, 'idp') };
}
