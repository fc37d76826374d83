/** The provider's signing keys (JWKS): fetched once, cached, refetched on an unknown `kid` at most once per cooldown. */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors } from 'jose';
import type { CryptoKey, FlattenedJWSInput, JWSHeaderParameters } from 'jose';
import type { IdpCallGuard } from './idp-call-guard.ts';
import type { IdpFetch } from './idp-fetch.ts';
import { IdpTransportError, classifyIdpFailure } from './oidc-errors.ts';

/** A key getter for `jose.jwtVerify`, shared by ID tokens, logout tokens and bearer tokens. */
export type ProviderKeyGetter = (
  protectedHeader: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey>;

export interface ProviderKeysOptions {
  readonly fetch: IdpFetch;
  readonly guard: IdpCallGuard;
  /** Per-fetch deadline in milliseconds. */
  readonly timeoutMs: number;
  /** Minimum time between refetches triggered by an unknown `kid`, ms. */
  readonly cooldownMs: number;
  /** How long a fetched set is used before it is refetched, ms. */
  readonly cacheMaxAgeMs: number;
}

/**
 * Builds the key getter for one provider's `jwks_uri`. Concurrent misses share one fetch
 * (jose's remote set is single-flight). When a refetch fails because the provider is down, the
 * last set fetched is still used, so tokens signed with known keys keep verifying during an
 * outage; an unknown `kid` then fails as unavailable, not as invalid.
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
          return response;
        } catch (err) {
          throw classifyIdpFailure(err, 'jwks');
        }
      }),
  });
  return async (protectedHeader, token) => {
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
}
