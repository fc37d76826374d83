/** The seam where resilience (a circuit breaker per provider dependency) wraps provider calls. */
import { performance } from 'node:perf_hooks';

/**
 * Which dependency a provider call belongs to; one breaker per kind and provider. A new
 * per-client operation adds its kind here and its route in the guard. `probe` is
 * the periodic discovery fetch that only checks the provider is up: a guard may take its failure
 * as proof of an outage at once.
 */
export type IdpCallKind =
  | 'discovery'
  | 'jwks'
  | 'token'
  | 'pushed_authorization'
  | 'userinfo'
  | 'revocation'
  | 'introspection'
  | 'probe';

/**
 * Runs one provider call. The call rejects only with classified errors (`AuthzError`), so a
 * breaker can count `IDP_UNAVAILABLE` as a failure and let `IDP_ERROR` (e.g. `invalid_grant`)
 * and `TOKEN_INVALID` through without tripping. A guard that refuses to run the call (breaker
 * open) should reject with an `IdpUnavailableError` whose reason is `circuit_open`, or with any
 * error carrying `code: 'EOPENBREAKER'` (opossum's), which is classified the same way.
 */
export type IdpCallGuard = <T>(kind: IdpCallKind, call: () => Promise<T>) => Promise<T>;

/** The guard used when none is given: runs the call as is. */
export const runUnguarded: IdpCallGuard = (_kind, call) => call();

/**
 * `guard` with each call it runs timed (calls an open breaker refuses are not): `observe` gets
 * the endpoint (`probe` is a discovery fetch), the seconds, and the error when the call failed
 * (`undefined` when it answered).
 */
export function timeIdpCalls(
  guard: IdpCallGuard,
  observe: (endpoint: Exclude<IdpCallKind, 'probe'>, seconds: number, error: unknown) => void,
): IdpCallGuard {
  return (kind, call) =>
    guard(kind, async () => {
      const started = performance.now();
      const endpoint = kind === 'probe' ? 'discovery' : kind;
      try {
        const result = await call();
        observe(endpoint, (performance.now() - started) / 1000, undefined);
        return result;
      } catch (error) {
        observe(endpoint, (performance.now() - started) / 1000, error ?? 'failed');
        throw error;
      }
    });
}
