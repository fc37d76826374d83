/** Runs each provider call through its provider's breaker for that kind of call. */
import { IdpUnavailableError, type IdpEndpoint } from '../errors.ts';
import type { Breaker } from './breaker.ts';
import type { IdpBreakers } from './breakers.ts';

/** The provider calls a guard routes (the provider's `IdpCallKind`). */
export type GuardedCall = Extract<
  IdpEndpoint,
  'discovery' | 'jwks' | 'token' | 'revocation' | 'introspection'
>;

/** Runs one provider call of kind `kind` through its breaker. */
export type IdpGuard = <T>(kind: GuardedCall, call: () => Promise<T>) => Promise<T>;

interface Route {
  readonly breaker: Breaker;
  readonly refusal: () => Error;
}

/**
 * The guard to hand to one provider (issuer): `discovery` and `jwks` go through the discovery
 * breaker, `token`, `revocation` and `introspection` through their own. A refused call rejects at once with
 * `IdpUnavailableError(kind, 'circuit_open')`, naming the endpoint that was not tried.
 */
export function createIdpGuard(breakers: IdpBreakers): IdpGuard {
  const route = (kind: GuardedCall, breaker: Breaker): Route => ({
    breaker,
    refusal: () => new IdpUnavailableError(kind, 'circuit_open'),
  });
  const routes: Readonly<Record<GuardedCall, Route>> = {
    discovery: route('discovery', breakers.discovery),
    jwks: route('jwks', breakers.discovery),
    token: route('token', breakers.token),
    revocation: route('revocation', breakers.revocation),
    introspection: route('introspection', breakers.introspection),
  };
  return (kind, call) => {
    const { breaker, refusal } = routes[kind];
    return breaker.run(call, refusal);
  };
}
