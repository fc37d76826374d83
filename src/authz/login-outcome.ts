/** How a callback ended, as `eoa_logins_total{outcome}` counts it: a bounded set of causes. */
import { AuthzError } from '../errors.ts';

/**
 * `ok` a session was created; `provider_refused` the provider answered the authorization
 * request with an `error`; `state` the sign-in response matched no usable login state (missing,
 * expired, already used, mismatched); `clock_skew` the login state was issued in the future;
 * `token_refused` the token endpoint refused the code exchange (a wrong client secret or
 * authentication method, a spent code); `provider_unavailable` the provider could not be
 * reached; `id_token` the ID token failed validation (signature, algorithm, issuer, audience,
 * nonce, expiry); `store_unavailable` the session could not be written; `session_too_large`
 * the session did not fit its cookies; `internal` anything else.
 */
export type LoginOutcome =
  | 'ok'
  | 'provider_refused'
  | 'state'
  | 'clock_skew'
  | 'token_refused'
  | 'provider_unavailable'
  | 'id_token'
  | 'store_unavailable'
  | 'session_too_large'
  | 'internal';

/** Every {@link LoginOutcome}, for binding metric children once and for documentation. */
export const loginOutcomes: readonly LoginOutcome[] = Object.freeze([
  'ok',
  'provider_refused',
  'state',
  'clock_skew',
  'token_refused',
  'provider_unavailable',
  'id_token',
  'store_unavailable',
  'session_too_large',
  'internal',
]);

/** The login counter of one app: the callback step's port to the metrics. */
export interface LoginMetrics {
  finished(outcome: LoginOutcome): void;
}

/** The outcome of a callback that failed with `error` (thrown by the exchange or the store). */
export function loginOutcomeOf(error: unknown): LoginOutcome {
  if (!(error instanceof AuthzError)) return 'internal';
  switch (error.code) {
    case 'IDP_UNAVAILABLE':
      return 'provider_unavailable';
    case 'IDP_ERROR':
      return 'token_refused';
    case 'TOKEN_INVALID':
      return 'id_token';
    case 'STATE_INVALID':
      return 'state';
    case 'STORE_UNAVAILABLE':
      return 'store_unavailable';
    case 'SESSION_TOO_LARGE':
      return 'session_too_large';
    default:
      return 'internal';
  }
}
