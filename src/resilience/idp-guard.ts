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

/**
 * The guard to hand to one provider (issuer): `discovery` and `jwks` go through the discovery
 * breaker, `token`, `revocation` and `introspection` through their own. A refused call rejects at once with
 * `IdpUnavailableError(kind, 'circuit_open')`, naming the endpoint that was not tried.
 */
export function createIdpGuard(breakers: IdpBreakers): IdpGuard {
  const routes: Readonly<Record<GuardedCall, Breaker>> = {
    discovery: breakers.discovery,
    jwks: breakers.discovery,
    token: breakers.token,
    revocation: breakers.revocation,
    introspection: breakers.introspection,
  };
  return (kind, call) =>
    routes[kind].run(call, () => new IdpUnavailableError(kind, 'circuit_open'));
}
