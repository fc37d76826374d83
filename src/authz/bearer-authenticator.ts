/** One app's bearer token check (SPEC §8): pre-check, verify or introspect, claim policy, revocation, with a cache of verified tokens. */
import {
  decodeJwt,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import { ASYMMETRIC_JWS_ALGS, type AppConfig } from '../config/schema.ts';
import { compileClaimPath } from '../config/claim-address.ts';
import type { IntrospectionClient } from '../oidc/introspection.ts';
import { verifyWithKeyRefetch, type ProviderKeyGetter } from '../oidc/provider-keys.ts';
import { AuthzError, IdpUnavailableError } from '../errors.ts';
import { sha256Base64url } from '../digest.ts';
import { hasExpired } from '../expiry.ts';
import { ExpiringLru } from '../expiring-lru.ts';
import {
  checkBearerClaims,
  confirmationOf,
  refused,
  type BearerIdentity,
  type ClaimCheck,
  type ClaimPolicy,
} from './bearer-claims.ts';
import { inspectToken } from './bearer-header.ts';
import type { BearerRevocations } from './bearer-revocations.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { Claims } from './rules.ts';

/** Counters the authenticator reports to; bound once per app. */
export interface BearerMetrics {
  /** How a token was checked, and what a verification (not a cache hit) concluded. */
  verification(kind: 'jwt' | 'introspection', outcome: 'valid' | 'invalid' | 'unavailable'): void;
  cache(result: 'hit' | 'miss'): void;
  throttled(): void;
}

export type BearerOutcome =
  | ClaimCheck
  | { readonly kind: 'unavailable'; readonly retryAfterSeconds: number; readonly detail: string };

export interface BearerDeps {
  /** The app's JWKS key getter, shared with ID tokens (one key set per issuer). */
  readonly getKey: ProviderKeyGetter;
  /**
   * The key getter of a further issuer (`bearer.issuers`): lazy, fetching nothing before a
   * token names that issuer. Required when `bearer.issuers` is not empty.
   */
  readonly issuerKeys?: (issuer: string, jwksUri: string | undefined) => ProviderKeyGetter;
  /** Present when `bearer.introspection.enabled`. */
  readonly introspection?: IntrospectionClient | undefined;
  readonly revocations: BearerRevocations;
  readonly metrics: BearerMetrics;
  /** Current time in milliseconds. */
  readonly now: () => number;
}

/** Longest `iss` looked up among the configured issuers; a longer one names none of them. */
const maxIssuerLength = 2048;

/** One issuer of bearer tokens: its keys, what jose checks, and the claim policy. */
interface IssuerEntry {
  readonly claimPolicy: ClaimPolicy;
  /** RFC 9068 verification of a JWT whose header passed the pre-check, but for the time. */
  readonly jwtOptions: JWTVerifyOptions;
  readonly getKey: ProviderKeyGetter;
}

type Verified =
  | { readonly kind: 'valid'; readonly identity: BearerIdentity; readonly until: number }
  | Exclude<BearerOutcome, { kind: 'valid' }>;
type Refused = Exclude<Verified, { kind: 'valid' }>;

const revokedToken: BearerOutcome = Object.freeze(refused('token revoked'));

function unavailableFrom(error: AuthzError): Refused {
  return {
    kind: 'unavailable',
    retryAfterSeconds: error.retryAfterSeconds,
    detail: error.message,
  };
}

/**
 * What a failed `jwtVerify` means: keys that could not be had (provider down, discovery
 * pending) are a 503, not a 401; any other catalogue or JOSE error names the failed check,
 * never the token. Anything else is a bug and is thrown on.
 */
function jwtFailure(err: unknown): Refused {
  if (err instanceof AuthzError) {
    if (err.code === 'IDP_UNAVAILABLE') return unavailableFrom(err);
    return refused(err.code.toLowerCase());
  }
  if (err instanceof joseErrors.JWKSTimeout) {
    return unavailableFrom(new IdpUnavailableError('jwks', 'timeout', { cause: err }));
  }
  if (err instanceof joseErrors.JOSEError) return refused(err.code);
  throw err;
}

/**
 * Checks bearer tokens for one app. A token seen before and still cached costs one SHA-256 and
 * one revocation read; a new one costs a header pre-check and a signature verification (or one
 * introspection call). Concurrent requests with the same new token share one verification.
 */
export class BearerAuthenticator {
  readonly #claimPolicy: ClaimPolicy;
  /** The app's own issuer (`oidc.issuer`). */
  readonly #primary: IssuerEntry;
  /** Every issuer by its exact `iss`, the app's own first; `undefined` with only that one. */
  readonly #issuers: ReadonlyMap<string, IssuerEntry> | undefined;
  readonly #maxTokenAgeMs: number;
  readonly #clockSkewMs: number;
  readonly #requireJwtType: boolean;
  readonly #issuer: string;
  readonly #now: () => number;
  readonly #introspection: IntrospectionClient | undefined;
  readonly #revocations: BearerRevocations;
  readonly #metrics: BearerMetrics;
  readonly #verified: ExpiringLru<BearerIdentity>;
  readonly #introspected: ExpiringLru<BearerIdentity>;
  readonly #inFlight = new Map<string, Promise<Verified>>();

  /** `iss` must equal `app.oidc.issuer`; `app.oidc.clientId` serves the ID-token checks and `azp`. */
  constructor(app: Pick<AppConfig, 'bearer' | 'oidc'>, deps: BearerDeps) {
    const { bearer: config, oidc } = app;
    const { now } = deps;
    this.#issuer = oidc.issuer;
    this.#claimPolicy = {
      audiences: config.audiences,
      clientId: oidc.clientId,
      allowedClients: config.allowedClients,
      identifier: compileClaimPath(config.identifierClaim),
      cognitoAccessTokens: oidc.provider === 'cognito',
      bindings: { dpop: config.dpop.enabled, mtls: config.mtls.enabled },
    };
    const jwtOptions: JWTVerifyOptions = {
      issuer: oidc.issuer,
      // Cognito access tokens have no `aud`: the claim policy checks their `client_id` instead.
      ...(oidc.provider === 'cognito' ? {} : { audience: [...config.audiences] }),
      algorithms: [...ASYMMETRIC_JWS_ALGS],
      clockTolerance: Math.ceil(config.clockSkew / 1000),
      maxTokenAge: Math.floor(config.maxTokenAge / 1000),
      requiredClaims: ['exp', 'iat'],
      ...(config.requireJwtType ? { typ: 'at+jwt' } : {}),
    };
    this.#primary = { claimPolicy: this.#claimPolicy, jwtOptions, getKey: deps.getKey };
    this.#issuers = undefined;
    if (config.issuers.length > 0) {
      const { issuerKeys } = deps;
      if (issuerKeys === undefined) throw new Error('bearer.issuers needs deps.issuerKeys');
      const issuers = new Map<string, IssuerEntry>([[oidc.issuer, this.#primary]]);
      for (const entry of config.issuers) {
        issuers.set(entry.issuer, {
          claimPolicy: {
            audiences: entry.audiences,
            clientId: oidc.clientId,
            allowedClients: entry.allowedClients,
            identifier: compileClaimPath(entry.identifierClaim),
            bindings: this.#claimPolicy.bindings!,
          },
          jwtOptions: { ...jwtOptions, issuer: entry.issuer, audience: [...entry.audiences] },
          getKey: issuerKeys(entry.issuer, entry.jwksUri),
        });
      }
      this.#issuers = issuers;
    }
    this.#maxTokenAgeMs = config.maxTokenAge;
    this.#clockSkewMs = config.clockSkew;
    this.#requireJwtType = config.requireJwtType;
    this.#now = now;
    this.#introspection = config.introspection?.enabled === true ? deps.introspection : undefined;
    this.#revocations = deps.revocations;
    this.#metrics = deps.metrics;
    // Keys are `sha256Base64url` digests of tokens, never tokens; an entry lives no longer than
    // the token's `exp` (or earlier), so a hit is never a token that has expired since.
    this.#verified = new ExpiringLru({ maxEntries: config.cacheMax, now });
    this.#introspected = new ExpiringLru({
      maxEntries: config.introspection?.cacheMax ?? 0,
      now,
    });
  }

  /**
   * Decides whether `token` identifies a caller of this app: without a promise when the token
   * was verified before and carries no `jti` to look up. `firstCheck` names what is wrong with
   * a token before it is verified; a token found among the verified ones passed it already.
   * `bound`: the store calls of the request (its revocation look-up).
   */
  authenticate(
    token: string,
    firstCheck?: (token: string) => string | undefined,
    bound?: CallBound,
  ): BearerOutcome | Promise<BearerOutcome> {
    const digest = sha256Base64url(token);
    const identity = this.#verified.get(digest) ?? this.#introspected.get(digest);
    if (identity !== undefined) {
      this.#metrics.cache('hit');
      return this.#unlessRevoked(identity, bound);
    }
    const problem = firstCheck?.(token);
    if (problem !== undefined) return refused(problem);
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
      verified.kind === 'valid' ? this.#unlessRevoked(verified.identity, bound) : verified,
    );
  }

  /** Checked on every request, cached or not: a revocation must take effect at once. */
  #unlessRevoked(
    identity: BearerIdentity,
    bound: CallBound | undefined,
  ): BearerOutcome | Promise<BearerOutcome> {
    const valid: BearerOutcome = { kind: 'valid', identity };
    if (identity.jti === undefined) return valid;
    const revoked = this.#revocations.isRevoked(identity.jti, bound);
    if (typeof revoked === 'boolean') return revoked ? revokedToken : valid;
    return revoked.then((settled) => (settled ? revokedToken : valid));
  }

  async #verify(token: string, digest: string): Promise<Verified> {
    const shape = inspectToken(token, { requireJwtType: this.#requireJwtType });
    if (shape.kind === 'refused') return refused(shape.reason);
    const verified =
      shape.kind === 'jwt' ? await this.#verifyJwt(token) : await this.#introspect(token);
    if (verified.kind === 'valid') {
      const cache = shape.kind === 'jwt' ? this.#verified : this.#introspected;
      cache.set(digest, verified.identity, verified.until);
    }
    return verified;
  }

  /**
   * RFC 9068: the signature via the provider's JWKS (refetched once, rate-limited per issuer, on
   * an unknown `kid` or a failed signature), `iss`, `aud`, `exp`/`nbf`/`iat`, then the claim policy.
   */
  async #verifyJwt(token: string): Promise<Verified> {
    const entry = this.#issuerOf(token);
    if (typeof entry === 'string') {
      this.#metrics.verification('jwt', 'invalid');
      return refused(entry);
    }
    let claims: JWTPayload;
    try {
      const options = { ...entry.jwtOptions, currentDate: new Date(this.#now()) };
      const getKey = entry.getKey;
      ({ payload: claims } = await verifyWithKeyRefetch(getKey, () =>
        jwtVerify(token, getKey, options),
      ));
    } catch (err) {
      const failed = jwtFailure(err);
      this.#metrics.verification('jwt', failed.kind);
      return failed;
    }
    const checked = checkBearerClaims(claims, entry.claimPolicy);
    this.#metrics.verification('jwt', checked.kind);
    if (checked.kind !== 'valid') return checked;
    // jose required `iat`; the entry must not outlive the age bound any more than `exp`.
    const ageLimit = (claims.iat ?? 0) * 1000 + this.#maxTokenAgeMs;
    return { ...checked, until: Math.min(checked.identity.expiresAt, ageLimit) };
  }

  /**
   * The issuer entry a JWT's (not yet verified) `iss` names, or why there is none. Only a
   * lookup: a token naming no configured issuer costs no fetch, and one naming issuer A is
   * then verified with A's keys and A's `iss` alone, so B's keys can never vouch for it.
   */
  #issuerOf(token: string): IssuerEntry | string {
    const issuers = this.#issuers;
    if (issuers === undefined) return this.#primary;
    let iss: unknown;
    try {
      ({ iss } = decodeJwt(token));
    } catch {
      return 'malformed token';
    }
    if (typeof iss !== 'string') return 'issuer missing';
    if (iss.length > maxIssuerLength) return 'unknown issuer';
    return issuers.get(iss) ?? 'unknown issuer';
  }

  async #introspect(token: string): Promise<Verified> {
    if (this.#introspection === undefined) return refused('opaque tokens are not accepted');
    let claims: Claims | undefined;
    try {
      claims = await this.#introspection.introspect(token);
    } catch (err) {
      if (!(err instanceof AuthzError)) throw err;
      this.#metrics.verification('introspection', 'unavailable');
      return unavailableFrom(err);
    }
    const checked = this.#checkIntrospected(claims);
    this.#metrics.verification('introspection', checked.kind);
    return checked.kind === 'valid' ? { ...checked, until: checked.identity.expiresAt } : checked;
  }

  /**
   * An introspection result: active, then what RFC 7662 leaves optional but, when present, must
   * still fit this app, then the claim policy.
   */
  #checkIntrospected(claims: Claims | undefined): ClaimCheck {
    if (claims === undefined) return refused('token not active');
    // RFC 9449 §6.2: a DPoP-bound token introspects with `token_type: DPoP` and `cnf.jkt`; say
    // that it is bound when its binding is not verified here, not merely that it is no access token.
    const confirmation = confirmationOf(claims, this.#claimPolicy);
    if (confirmation?.kind === 'invalid') return confirmation;
    const { iss, token_type: tokenType, iat, exp } = claims;
    if (iss !== undefined && iss !== this.#issuer) return refused('issuer mismatch');
    // A refresh token is active too; only access tokens are bearer credentials.
    const accessType = confirmation?.kind === 'dpop' ? /^dpop$/i : /^bearer$/i;
    if (tokenType !== undefined && (typeof tokenType !== 'string' || !accessType.test(tokenType))) {
      return refused('not an access token');
    }
    const now = this.#now();
    if (typeof exp === 'number' && hasExpired(exp * 1000, now)) return refused('token expired');
    if (typeof iat === 'number' && now - iat * 1000 > this.#maxTokenAgeMs + this.#clockSkewMs) {
      return refused('token too old');
    }
    return checkBearerClaims(claims, this.#claimPolicy, true);
  }
}
