/** Runs each provider call through its provider's breaker for that kind of call. */
import { IdpUnavailableError, type IdpEndpoint } from '../errors.ts';
import type { Breaker } from './breaker.ts';
import type { IdpBreakers } from './breakers.ts';
import { isOutage } from './outage.ts';

/** The provider calls a guard routes (the provider's `IdpCallKind`). */
export type GuardedCall =
  | Extract<
      IdpEndpoint,
      | 'discovery'
      | 'jwks'
      | 'token'
      | 'pushed_authorization'
      | 'userinfo'
      | 'revocation'
      | 'introspection'
    >
  | 'probe';

/** Runs one provider call of kind `kind` through its breaker. */
export type IdpGuard = <T>(kind: GuardedCall, call: () => Promise<T>) => Promise<T>;

/**
 * The guard to hand to one provider (issuer): `discovery`, `jwks` and `probe` go through the
 * discovery breaker, `token`, `revocation` and `introspection` through their own, `userinfo`
 * and `pushed_authorization` through the token breaker (the same server answers them, at every
 * login; a pushed request that fails opens it, so logins answer 503 at once). A refused call
 * rejects at once with `IdpUnavailableError(kind, 'circuit_open')`, naming the endpoint that was
 * not tried.
 *
 * A probe that ran and failed with an outage opens the discovery breaker at once: probes come
 * one per `oidc.probeInterval`, never enough of them in a rolling window to reach the breaker's
 * volume threshold, so counting them alone left the breaker closed through a whole outage.
 */
export function createIdpGuard(breakers: IdpBreakers): IdpGuard {
  const routes: Readonly<Record<GuardedCall, Breaker>> = {
    discovery: breakers.discovery,
    jwks: breakers.discovery,
    probe: breakers.discovery,
    token: breakers.token,
    pushed_authorization: breakers.token,
    userinfo: breakers.token,
    revocation: breakers.revocation,
    introspection: breakers.introspection,
  };
  return (kind, call) => {
    const endpoint = kind === 'probe' ? 'discovery' : kind;
    const refusal = () => new IdpUnavailableError(endpoint, 'circuit_open');
    if (kind !== 'probe') return routes[kind].run(call, refusal);
    let ran = false;
    return routes.probe
      .run(() => {
        ran = true;
        return call();
      }, refusal)
      .catch((error: unknown) => {
        if (ran && isOutage(error)) routes.probe.trip();
        throw error;
      });
  };
}
