/** One app's bearer token check (SPEC §8): pre-check, verify or introspect, claim policy, revocation, with a cache of verified tokens. */
import type { BearerConfig } from '../config/schema.ts';
import { compileClaimPath } from '../config/claim-address.ts';
import type { IntrospectionClient } from '../oidc/introspection.ts';
import type { ProviderKeyGetter } from '../oidc/provider-keys.ts';
import { AuthzError } from '../errors.ts';
import { sha256Base64url } from '../digest.ts';
import { hasExpired } from '../expiry.ts';
import {
  bindingOf,
  checkBearerClaims,
  UNVERIFIED_BINDING,
  type BearerIdentity,
  type ClaimPolicy,
  type TokenBinding,
} from './bearer-claims.ts';
import { inspectToken } from './bearer-header.ts';
import { verifyBearerJwt, type BearerJwtPolicy } from './bearer-jwt.ts';
import type { BearerRevocations } from './bearer-revocations.ts';
import { TokenCache } from './bearer-token-cache.ts';

/** How a token was checked, for metrics. */
export type VerificationKind = 'jwt' | 'introspection';
/** What a verification (not a cache hit) concluded. */
export type VerificationOutcome = 'valid' | 'invalid' | 'unavailable';

/** Counters the authenticator reports to; bound once per app. */
export interface BearerMetrics {
  verification(kind: VerificationKind, outcome: VerificationOutcome): void;
  cache(result: 'hit' | 'miss'): void;
  throttled(): void;
}

/** Metrics that go nowhere, for tests and tools. */
export const noBearerMetrics: BearerMetrics = Object.freeze({
  verification: () => undefined,
  cache: () => undefined,
  throttled: () => undefined,
});

export type BearerOutcome =
  | { readonly kind: 'valid'; readonly identity: BearerIdentity }
  /**
   * `reason` names the failed check and is safe to log; the client sees only `invalid_token`,
   * and for a sender-constrained token (`binding`) the reason as `error_description`.
   */
  | { readonly kind: 'invalid'; readonly reason: string; readonly binding?: TokenBinding }
  | { readonly kind: 'unavailable'; readonly retryAfterSeconds: number; readonly detail: string };

export interface BearerAuthenticatorOptions {
  /** The app's resolved `bearer` block. */
  readonly config: BearerConfig;
  /** The app's provider issuer; `iss` must equal it. */
  readonly issuer: string;
  /** The app's own OAuth client id (ID-token heuristics, `azp`). */
  readonly clientId: string;
  /** Current time in milliseconds. */
  readonly now: () => number;
}

export interface BearerAuthenticatorDeps {
  /** The app's JWKS key getter, shared with ID tokens (one key set per issuer). */
  readonly getKey: ProviderKeyGetter;
  /** Present when `bearer.introspection.enabled`. */
  readonly introspection?: IntrospectionClient | undefined;
  readonly revocations: BearerRevocations;
  readonly metrics?: BearerMetrics;
}

type Verified =
  | { readonly kind: 'valid'; readonly identity: BearerIdentity; readonly until: number }
  | Exclude<BearerOutcome, { kind: 'valid' }>;

const revokedToken: BearerOutcome = Object.freeze({ kind: 'invalid', reason: 'token revoked' });

function refusedClaims(checked: { reason: string; binding?: TokenBinding }): Verified {
  return checked.binding === undefined
    ? { kind: 'invalid', reason: checked.reason }
    : { kind: 'invalid', reason: checked.reason, binding: checked.binding };
}

function unavailableFrom(error: AuthzError): Verified {
  return {
    kind: 'unavailable',
    retryAfterSeconds: error.retryAfterSeconds,
    detail: error.message,
  };
}

/**
 * Checks bearer tokens for one app. A token seen before and still cached costs one SHA-256 and
 * one revocation read; a new one costs a header pre-check and a signature verification (or one
 * introspection call). Concurrent requests with the same new token share one verification.
 */
export class BearerAuthenticator {
  readonly #claimPolicy: ClaimPolicy;
  readonly #jwtPolicy: BearerJwtPolicy;
  readonly #maxTokenAgeMs: number;
  readonly #requireJwtType: boolean;
  readonly #issuer: string;
  readonly #getKey: ProviderKeyGetter;
  readonly #introspection: IntrospectionClient | undefined;
  readonly #revocations: BearerRevocations;
  readonly #metrics: BearerMetrics;
  readonly #verified: TokenCache<BearerIdentity>;
  readonly #introspected: TokenCache<BearerIdentity>;
  readonly #inFlight = new Map<string, Promise<Verified>>();

  constructor(options: BearerAuthenticatorOptions, deps: BearerAuthenticatorDeps) {
    const { config, now } = options;
    this.#issuer = options.issuer;
    this.#claimPolicy = {
      audiences: config.audiences,
      clientId: options.clientId,
      allowedClients: config.allowedClients,
      identifier: compileClaimPath(config.identifierClaim),
    };
    this.#jwtPolicy = {
      issuer: options.issuer,
      audiences: config.audiences,
      clockSkewMs: config.clockSkew,
      maxTokenAgeMs: config.maxTokenAge,
      requireJwtType: config.requireJwtType,
      now,
    };
    this.#maxTokenAgeMs = config.maxTokenAge;
    this.#requireJwtType = config.requireJwtType;
    this.#getKey = deps.getKey;
    this.#introspection = config.introspection?.enabled === true ? deps.introspection : undefined;
    this.#revocations = deps.revocations;
    this.#metrics = deps.metrics ?? noBearerMetrics;
    this.#verified = new TokenCache({ maxEntries: config.cacheMax, now });
    this.#introspected = new TokenCache({
      maxEntries: config.introspection?.cacheMax ?? 0,
      now,
    });
  }

  /**
   * Decides whether `token` identifies a caller of this app: without a promise when the token
   * was verified before and carries no `jti` to look up. `firstCheck` names what is wrong with
   * a token before it is verified; a token found among the verified ones passed it already.
   */
  authenticate(
    token: string,
    firstCheck?: (token: string) => string | undefined,
  ): BearerOutcome | Promise<BearerOutcome> {
    const digest = sha256Base64url(token);
    const identity = this.#verified.get(digest) ?? this.#introspected.get(digest);
    if (identity !== undefined) {
      this.#metrics.cache('hit');
      return this.#unlessRevoked(identity);
    }
    const problem = firstCheck?.(token);
    if (problem !== undefined) return { kind: 'invalid', reason: problem };
    this.#metrics.cache('miss');
    let pending = this.#inFlight.get(digest);
    if (pending === undefined) {
      pending = this.#verify(token, digest);
      this.#inFlight.set(digest, pending);
      const settled = pending;
      // Only the promise that filled the slot clears it.
      const clear = () => {
        if (this.#inFlight.get(digest) === settled) this.#inFlight.delete(digest);
      };
      settled.then(clear, clear);
    }
    return pending.then((verified) =>
      verified.kind === 'valid' ? this.#unlessRevoked(verified.identity) : verified,
    );
  }

  /** Checked on every request, cached or not: a revocation must take effect at once. */
  #unlessRevoked(identity: BearerIdentity): BearerOutcome | Promise<BearerOutcome> {
    const valid: BearerOutcome = { kind: 'valid', identity };
    if (identity.jti === undefined) return valid;
    return this.#revocations
      .isRevoked(identity.jti)
      .then((revoked) => (revoked ? revokedToken : valid));
  }

  async #verify(token: string, digest: string): Promise<Verified> {
    const shape = inspectToken(token, { requireJwtType: this.#requireJwtType });
    if (shape.kind === 'refused') return { kind: 'invalid', reason: shape.reason };
    const verified =
      shape.kind === 'jwt' ? await this.#verifyJwt(token) : await this.#introspect(token);
    if (verified.kind === 'valid') {
      const cache = shape.kind === 'jwt' ? this.#verified : this.#introspected;
      cache.set(digest, verified.identity, verified.until);
    }
    return verified;
  }

  async #verifyJwt(token: string): Promise<Verified> {
    const result = await verifyBearerJwt(token, this.#getKey, this.#jwtPolicy);
    if (result.kind === 'unavailable') {
      this.#metrics.verification('jwt', 'unavailable');
      return unavailableFrom(result.error);
    }
    if (result.kind === 'invalid') {
      this.#metrics.verification('jwt', 'invalid');
      return result;
    }
    const checked = checkBearerClaims(result.claims, this.#claimPolicy);
    this.#metrics.verification('jwt', checked.ok ? 'valid' : 'invalid');
    if (!checked.ok) return refusedClaims(checked);
    const iat = result.claims.iat;
    // jose required `iat`; the entry must not outlive the age bound any more than `exp`.
    const ageLimit = (iat ?? 0) * 1000 + this.#maxTokenAgeMs;
    return {
      kind: 'valid',
      identity: checked.identity,
      until: Math.min(checked.identity.expiresAt, ageLimit),
    };
  }

  async #introspect(token: string): Promise<Verified> {
    if (this.#introspection === undefined) {
      return { kind: 'invalid', reason: 'opaque tokens are not accepted' };
    }
    let claims: Readonly<Record<string, unknown>> | undefined;
    try {
      claims = await this.#introspection.introspect(token);
    } catch (err) {
      if (!(err instanceof AuthzError)) throw err;
      this.#metrics.verification('introspection', 'unavailable');
      return unavailableFrom(err);
    }
    // RFC 9449 §6.2: a DPoP-bound token introspects with `token_type: DPoP` and `cnf.jkt`; say
    // that it is bound, not merely that it is no access token.
    const binding = claims === undefined ? undefined : bindingOf(claims);
    if (binding !== undefined) {
      this.#metrics.verification('introspection', 'invalid');
      return { kind: 'invalid', reason: UNVERIFIED_BINDING, binding };
    }
    const refusal = claims === undefined ? 'token not active' : this.#introspectionRefusal(claims);
    if (claims === undefined || refusal !== undefined) {
      this.#metrics.verification('introspection', 'invalid');
      return { kind: 'invalid', reason: refusal ?? 'token not active' };
    }
    const checked = checkBearerClaims(claims, this.#claimPolicy, true);
    this.#metrics.verification('introspection', checked.ok ? 'valid' : 'invalid');
    if (!checked.ok) return refusedClaims(checked);
    return { kind: 'valid', identity: checked.identity, until: checked.identity.expiresAt };
  }

  /** What RFC 7662 leaves optional but, when present, must still fit this app. */
  #introspectionRefusal(claims: Readonly<Record<string, unknown>>): string | undefined {
    const { iss, token_type: tokenType, iat } = claims;
    if (iss !== undefined && iss !== this.#issuer) return 'issuer mismatch';
    // A refresh token is active too; only access tokens are bearer credentials.
    if (
      tokenType !== undefined &&
      (typeof tokenType !== 'string' || !/^bearer$/i.test(tokenType))
    ) {
      return 'not an access token';
    }
    const now = this.#jwtPolicy.now();
    if (typeof claims['exp'] === 'number' && hasExpired(claims['exp'] * 1000, now)) {
      return 'token expired';
    }
    if (
      typeof iat === 'number' &&
      now - iat * 1000 > this.#maxTokenAgeMs + this.#jwtPolicy.clockSkewMs
    ) {
      return 'token too old';
    }
    return undefined;
  }
}
