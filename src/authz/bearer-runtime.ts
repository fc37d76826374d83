/** Everything one app needs for bearer tokens, built once from its config (SPEC §8). */
import type { AppConfig } from '../config/schema.ts';
import { DEFAULT_UPSTREAM_HEADERS } from '../config/schema.ts';
import {
  BearerAuthenticator,
  type BearerDeps,
  type BearerMetrics,
} from './bearer-authenticator.ts';
import type { BearerRevocations } from './bearer-revocations.ts';
import { compileScopeRequirements, type ScopeRequirements } from './bearer-scopes.ts';
import { FailureThrottle } from './bearer-throttle.ts';
import { buildDpopRuntime, type DpopDeps, type DpopRuntime } from './dpop-runtime.ts';

/** One app's bearer machinery; absent from an app whose `bearer.enabled` is false. */
export interface BearerRuntime {
  readonly authenticator: BearerAuthenticator;
  readonly throttle: FailureThrottle;
  readonly scopes: ScopeRequirements;
  /** The shared revocation list of this app's token ids. */
  readonly revocations: BearerRevocations;
  readonly metrics: BearerMetrics;
  /**
   * True when `x-auth-request-user` keeps its default template (`{{ claims.sub }}`): it then
   * carries the sanitised identifier claim instead, which is `sub` unless configured otherwise.
   */
  readonly userHeaderIsIdentifier: boolean;
  readonly passAuthorizationHeader: boolean;
  readonly overridesCookie: boolean;
  /** Present when `bearer.dpop.enabled`. */
  readonly dpop: DpopRuntime | undefined;
  /**
   * `bearer.mtls.xfccHops` when certificate-bound tokens are on (where the client certificate
   * is read from), `undefined` when they are off.
   */
  readonly xfccHops: number | undefined;
}

/** Builds the bearer runtime of `app`, or `undefined` when bearer tokens are off for it. */
export function buildBearerRuntime(
  app: AppConfig,
  deps: BearerDeps & { readonly dpopProofs: DpopDeps['proofs'] },
): BearerRuntime | undefined {
  const config = app.bearer;
  if (!config.enabled) return undefined;
  const userHeader = 'x-auth-request-user';
  return {
    authenticator: new BearerAuthenticator(app, deps),
    throttle: new FailureThrottle({
      maxFailures: config.failureThrottle.maxFailures,
      windowMs: config.failureThrottle.window,
      now: deps.now,
    }),
    scopes: compileScopeRequirements(config.requiredScopes, config.paths),
    revocations: deps.revocations,
    metrics: deps.metrics,
    userHeaderIsIdentifier:
      app.upstreamHeaders[userHeader] === DEFAULT_UPSTREAM_HEADERS[userHeader],
    passAuthorizationHeader: config.passAuthorizationHeader,
    overridesCookie: config.overridesCookie,
    dpop: buildDpopRuntime(app, { proofs: deps.dpopProofs, now: deps.now }),
    xfccHops: config.mtls.enabled ? config.mtls.xfccHops : undefined,
  };
}
