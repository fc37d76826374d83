/** The process's breakers, one per dependency: the store, and per provider (issuer) its endpoints. */
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import { IdpUnavailableError, StoreUnavailableError, type IdpEndpoint } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { createBreaker, type Breaker, type BreakerTuning } from './breaker.ts';
import { createBreakerMetrics } from './breaker-metrics.ts';

/**
 * The breakers of one provider (issuer), shared by every app on it. `discovery` also guards
 * JWKS fetches (same metadata host, both needed only to validate); `revocation` is apart from
 * `token` because revocation is best effort at logout, and a failing revocation endpoint must
 * never stop logins and refreshes.
 */
export interface IdpBreakers {
  readonly discovery: Breaker;
  readonly token: Breaker;
  readonly revocation: Breaker;
  /** RFC 7662 introspection; refuses with `IDP_UNAVAILABLE` (503), never a 401. */
  readonly introspection: Breaker;
}

/** Every breaker of the process. */
export interface Breakers {
  /** The shared store (Redis); refuses with {@link StoreUnavailableError} `circuit_open`. */
  readonly store: Breaker;
  /**
   * The breakers of the provider named `app` (the first app on its issuer), built on first use
   * (a reload may add providers). Names become metric labels, so they must stay bounded.
   */
  idp(app: string): IdpBreakers;
  /**
   * Applies new tuning to every breaker (a config reload); returns the config keys that differ
   * but take a restart (see {@link Breaker.retune}), e.g. `breakers.store.rollingWindow`.
   */
  retune(store: BreakerTuning, idp: BreakerTuning): readonly string[];
  /** Stops every breaker's timers. */
  shutdown(): void;
}

/** Options for {@link createBreakers}. */
export interface BreakersOptions {
  /** Where `eoa_breaker_*` series go; registered once here. */
  readonly registry: Registry;
  readonly logger: Logger;
  /** Store breaker tuning (`breakers.store`). */
  readonly store: BreakerTuning;
  /** Tuning of every provider breaker (`breakers.idp`). */
  readonly idp: BreakerTuning;
  /**
   * A cheap store read run when the store breaker goes half-open, so it closes again without
   * waiting for traffic. Default none (the next store call is the probe).
   */
  readonly storeProbe?: () => Promise<unknown>;
  /** Default `Date.now`. */
  readonly now?: Clock;
}

/** Builds the breakers. */
export function createBreakers(options: BreakersOptions): Breakers {
  const seriesOf = createBreakerMetrics(options.registry);
  const { logger } = options;
  const now = options.now ?? Date.now;

  const store = createBreaker(options.store, {
    name: 'store',
    logger,
    series: seriesOf('store'),
    now,
    openError: (retryAfterMs) => new StoreUnavailableError('circuit_open', { retryAfterMs }),
    ...(options.storeProbe === undefined ? {} : { probe: options.storeProbe }),
  });

  const built = [store];
  let idpTuning = options.idp;
  const idpBreaker = (app: string, kind: IdpEndpoint): Breaker => {
    const name = `idp:${app}:${kind}`;
    const breaker = createBreaker(idpTuning, {
      name,
      logger: logger.child({ app }),
      series: seriesOf(name),
      now,
      openError: () => new IdpUnavailableError(kind, 'circuit_open'),
    });
    built.push(breaker);
    return breaker;
  };

  const byApp = new Map<string, IdpBreakers>();
  const idp = (app: string): IdpBreakers => {
    let breakers = byApp.get(app);
    if (breakers === undefined) {
      breakers = Object.freeze({
        discovery: idpBreaker(app, 'discovery'),
        token: idpBreaker(app, 'token'),
        revocation: idpBreaker(app, 'revocation'),
        introspection: idpBreaker(app, 'introspection'),
      });
      byApp.set(app, breakers);
    }
    return breakers;
  };
  return {
    store,
    idp,
    retune(storeTuning, idp) {
      idpTuning = idp;
      const restart = new Set(store.retune(storeTuning).map((key) => `breakers.store.${key}`));
      for (const breaker of built.slice(1)) {
        for (const key of breaker.retune(idp)) restart.add(`breakers.idp.${key}`);
      }
      return [...restart];
    },
    shutdown() {
      for (const breaker of built) breaker.shutdown();
    },
  };
}
