/** Runs each provider call through its provider's breaker for that kind of call. */
import type { IdpCallGuard, IdpCallKind } from '../oidc/idp-call-guard.ts';
import { IdpUnavailableError } from '../oidc/oidc-errors.ts';
import type { Breaker } from './breaker.ts';
import type { IdpBreakers } from './breakers.ts';

interface Route {
  readonly breaker: Breaker;
  readonly refusal: () => Error;
}

/**
 * The guard to hand to one provider (issuer): `discovery` and `jwks` go through the discovery
 * breaker, `token`, `revocation` and `introspection` through their own. A refused call rejects at once with
 * `IdpUnavailableError(kind, 'circuit_open')`, naming the endpoint that was not tried.
 */
export function createIdpGuard(breakers: IdpBreakers): IdpCallGuard {
  const route = (kind: IdpCallKind, breaker: Breaker): Route => ({
    breaker,
    refusal: () => new IdpUnavailableError(kind, 'circuit_open'),
  });
  const routes: Readonly<Record<IdpCallKind, Route>> = {
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
