/** The provider's signing keys (JWKS): fetched once, cached, refetched on an unknown `kid` and, rate-limited, after a key failure. */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors } from 'jose';
import type { CryptoKey, FlattenedJWSInput, JWSHeaderParameters } from 'jose';
import type { Clock } from '../clock.ts';
import type { IdpCallGuard } from './idp-call-guard.ts';
import type { IdpFetch } from './idp-fetch.ts';
import { IdpUnavailableError } from '../errors.ts';
import { IdpTransportError, classifyIdpFailure } from './oidc-errors.ts';

/**
 * A key getter for `jose.jwtVerify`, shared by ID tokens, logout tokens and bearer tokens. A
 * getter backed by the provider's JWKS also has `refetchAfterFailure` (see
 * {@link verifyWithKeyRefetch}).
 */
export type ProviderKeyGetter = ((
  protectedHeader: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey>) & {
  /**
   * Called with what a verification threw. When it is a key failure (no key for the `kid`, or a
   * signature that fails with the key found), refetches the JWKS unless a forced refetch ran
   * less than the rate limit ago, and resolves true when the token is worth verifying again.
   */
  readonly refetchAfterFailure?: (error: unknown) => Promise<boolean>;
};

export interface ProviderKeysOptions {
  readonly fetch: IdpFetch;
  readonly guard: IdpCallGuard;
  /** Per-fetch deadline in milliseconds. */
  readonly timeoutMs: number;
  /** Minimum time between refetches triggered by an unknown `kid`, ms. */
  readonly cooldownMs: number;
  /** How long a fetched set is used before it is refetched, ms. */
  readonly cacheMaxAgeMs: number;
  /** Least time between two refetches forced by a key failure, ms: the bound hostile tokens get. */
  readonly forcedRefetchIntervalMs: number;
  /** Clock of the forced-refetch rate limit. */
  readonly now: Clock;
}

/** A key failure: no key for the token's `kid`, or a signature that the key found rejects. */
export function isKeyFailure(error: unknown): boolean {
  return (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWSSignatureVerificationFailed
  );
}

/**
 * Runs `verify` (a `jwtVerify` with `getKey`); when it fails for a key reason and the getter
 * refetched the provider's keys, runs it once more. A provider that rotates its key, or replaces
 * it under the same `kid`, is followed at the first token signed with the new key.
 */
export async function verifyWithKeyRefetch<T>(
  getKey: ProviderKeyGetter,
  verify: () => Promise<T>,
): Promise<T> {
  try {
    return await verify();
  } catch (err) {
    if (getKey.refetchAfterFailure === undefined || !(await getKey.refetchAfterFailure(err))) {
      throw err;
    }
    return verify();
  }
}

/**
 * Builds the key getter for one provider's `jwks_uri`. Concurrent misses share one fetch
 * (jose's remote set is single-flight). When a refetch fails because the provider is down, the
 * last set fetched is still used, so tokens signed with known keys keep verifying during an
 * outage; an unknown `kid` then fails as unavailable, not as invalid.
 *
 * A key failure forces a refetch past jose's cooldown (issue: a key rotated right after a fetch
 * waited out the cooldown, and a key replaced under the same `kid` was never refetched), at most
 * once per `forcedRefetchIntervalMs` for the issuer, so tokens with made-up `kid`s cannot make
 * us hammer the provider. Failures while a forced refetch runs wait for it and try again.
 */
export function createProviderKeys(jwksUri: URL, options: ProviderKeysOptions): ProviderKeyGetter {
  const remote = createRemoteJWKSet(jwksUri, {
    timeoutDuration: Math.ceil(options.timeoutMs),
    cooldownDuration: options.cooldownMs,
    cacheMaxAge: options.cacheMaxAgeMs,
    [customFetch]: (url, init) =>
      options.guard('jwks', async () => {
        try {
          const response = await options.fetch(url, init);
          if (response.status !== 200) {
            await response.body?.cancel();
            throw new IdpTransportError('http_status', { httpStatus: response.status });
          }
          // A body that is not JSON (a proxy's HTML page) is the provider failing, not a verdict
          // on the token being verified: checked here, where the breaker and the last set see it.
          const text = await response.text();
          try {
            JSON.parse(text);
          } catch {
            throw new IdpUnavailableError('jwks', 'invalid_response', {
              detail: 'JWKS is not JSON',
            });
          }
          return new Response(text, { status: 200, headers: response.headers });
        } catch (err) {
          throw classifyIdpFailure(err, 'jwks');
        }
      }),
  });
  const getKey = async (
    protectedHeader: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<CryptoKey> => {
    try {
      return await remote(protectedHeader, token);
    } catch (err) {
      const failure = classifyIdpFailure(err, 'jwks');
      const lastKnown = remote.jwks();
      if (failure.code !== 'IDP_UNAVAILABLE' || lastKnown === undefined) throw err;
      try {
        return await createLocalJWKSet(lastKnown)(protectedHeader, token);
      } catch (fallbackErr) {
        if (fallbackErr instanceof errors.JWKSNoMatchingKey) throw failure;
        throw fallbackErr;
      }
    }
  };

  let forcedAt: number | undefined;
  let forced: Promise<void> | undefined;
  /** What the last forced refetch failed with; undefined when it fetched the set. */
  let forcedFailure: unknown;
  const refetchAfterFailure = async (error: unknown): Promise<boolean> => {
    if (!isKeyFailure(error)) return false;
    if (forced === undefined) {
      const now = options.now();
      if (forcedAt !== undefined && now - forcedAt < options.forcedRefetchIntervalMs) {
        // Rate-limited: the last forced refetch stands, including a provider it found unreachable.
        return unlessUnreachable(error);
      }
      forcedAt = now;
      const current = remote
        .reload()
        .then(
          () => {
            forcedFailure = undefined;
          },
          (err: unknown) => {
            forcedFailure = err;
          },
        )
        .finally(() => {
          if (forced === current) forced = undefined;
        });
      forced = current;
    }
    await forced;
    return forcedFailure === undefined || unlessUnreachable(error);
  };
  /**
   * After a forced refetch that could not reach the provider: a `kid` we never saw cannot be
   * judged (unavailable, as without the refetch); a signature our keys reject stays invalid.
   */
  const unlessUnreachable = (error: unknown): false => {
    if (forcedFailure !== undefined && error instanceof errors.JWKSNoMatchingKey) {
      throw classifyIdpFailure(forcedFailure, 'jwks');
    }
    return false;
  };
  return Object.assign(getKey, { refetchAfterFailure });
}
