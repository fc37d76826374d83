/** Verifies a bearer JWT (RFC 9068) whose header already passed the pre-check: signature via the provider's JWKS, `iss`, `aud`, `exp`/`nbf`/`iat`. */
import { errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { AuthzError, IdpUnavailableError } from '../errors.ts';
import type { ProviderKeyGetter } from '../oidc/provider-keys.ts';
import { bearerAlgorithms } from './bearer-header.ts';

export interface BearerJwtPolicy {
  /** The provider's issuer; `iss` must equal it. */
  readonly issuer: string;
  /** Accepted `aud` values; one of them must be in the token. */
  readonly audiences: readonly string[];
  /** Tolerance for `exp`, `nbf` and `iat`, in milliseconds. */
  readonly clockSkewMs: number;
  /** Oldest `iat` accepted, in milliseconds. */
  readonly maxTokenAgeMs: number;
  /** Require `typ: at+jwt` (RFC 9068 §2.1). */
  readonly requireJwtType: boolean;
  /** Current time in milliseconds. */
  readonly now: () => number;
}

export type JwtVerification =
  | { readonly kind: 'valid'; readonly claims: JWTPayload }
  /** `reason` names the failed check (a jose error code or ours), never the token. */
  | { readonly kind: 'invalid'; readonly reason: string }
  /** The keys could not be had (provider down, discovery pending): a 503, not a 401. */
  | { readonly kind: 'unavailable'; readonly error: AuthzError };

/**
 * Verifies `token` with the app's JWKS key getter (shared with ID tokens, so one key set per
 * issuer, refetched on an unknown `kid` at most once per cooldown). Resolves with a verdict;
 * rejects only on a failure that is neither (a bug).
 */
export async function verifyBearerJwt(
  token: string,
  getKey: ProviderKeyGetter,
  policy: BearerJwtPolicy,
): Promise<JwtVerification> {
  try {
    const { payload } = await jwtVerify(token, getKey, {
      issuer: policy.issuer,
      audience: [...policy.audiences],
      algorithms: [...bearerAlgorithms],
      clockTolerance: Math.ceil(policy.clockSkewMs / 1000),
      maxTokenAge: Math.floor(policy.maxTokenAgeMs / 1000),
      currentDate: new Date(policy.now()),
      requiredClaims: ['exp', 'iat'],
      ...(policy.requireJwtType ? { typ: 'at+jwt' } : {}),
    });
    return { kind: 'valid', claims: payload };
  } catch (err) {
    if (err instanceof AuthzError) {
      if (err.code === 'IDP_UNAVAILABLE') return { kind: 'unavailable', error: err };
      return { kind: 'invalid', reason: err.code.toLowerCase() };
    }
    if (err instanceof joseErrors.JWKSTimeout) {
      return {
        kind: 'unavailable',
        error: new IdpUnavailableError('jwks', 'timeout', { cause: err }),
      };
    }
    if (err instanceof joseErrors.JOSEError) return { kind: 'invalid', reason: err.code };
    throw err;
  }
}
