/** A signed identity for the upstream (`upstreamAssertion`): one short-lived JWT per identity, re-signed only near its expiry. */
import { constants, randomBytes, sign } from 'node:crypto';
import { compileClaimPath, type ClaimPath } from '../config/claim-address.ts';
import type { AppConfig } from '../config/schema.ts';
import type { AssertionAlg, SigningKeys } from '../config/signing-keys.ts';
import type { TemplateContext } from '../config/template.ts';

/** A claim value longer than this (as JSON) is left out of the assertion. */
const maxClaimBytes = 4 * 1024;

/** How a request was authenticated, as templates read it (`auth.method`, `auth.client_id`). */
export type AuthContext = NonNullable<TemplateContext['auth']>;

/** The identity of a session or verified bearer token, as the app renders it. */
export interface IdentityInput {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly auth: AuthContext;
}

/** An assertion and when to sign the next one for the same identity, ms since the epoch. */
export interface IssuedAssertion {
  readonly token: string;
  readonly renewAt: number;
}

/** What `issue` needs beyond the identity. */
export interface AssertionRequest {
  /** When the credential behind the identity stops being valid (a bearer token's `exp`), ms. */
  readonly notAfter?: number;
  /** `sub` when the claims give none (a bearer token's identifier). */
  readonly subject?: string;
}

/** How each algorithm signs: the digest, and the signature's encoding JWS wants (RFC 7518 §3). */
const SIGNING: Readonly<
  Record<AssertionAlg, { readonly digest: string | null; readonly options: object }>
> = {
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' } },
  ES384: { digest: 'sha384', options: { dsaEncoding: 'ieee-p1363' } },
  ES512: { digest: 'sha512', options: { dsaEncoding: 'ieee-p1363' } },
  RS256: { digest: 'sha256', options: {} },
  PS256: {
    digest: 'sha256',
    options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
  },
  EdDSA: { digest: null, options: {} },
};

function base64url(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64url');
}

/**
 * The app's assertion signer, built with each runtime from its config and the key the keyring
 * holds for it. Assertions are kept per identity object (a cached session, a cached token's
 * verification) and signed again once half their lifetime has passed, so an upstream always
 * gets one with at least half its `ttl` left.
 */
export class UpstreamAssertion {
  /** The request header the assertion goes in. */
  readonly header: string;
  readonly #issuer: string;
  readonly #audience: string;
  readonly #ttlSeconds: number;
  readonly #claims: readonly (readonly [string, ClaimPath])[];
  readonly #keys: SigningKeys;
  readonly #encodedHeader: string;
  readonly #signing: (typeof SIGNING)[AssertionAlg];
  readonly #issued = new WeakMap<object, IssuedAssertion>();

  constructor(config: NonNullable<AppConfig['upstreamAssertion']>, app: string, keys: SigningKeys) {
    this.header = config.header;
    this.#issuer = config.issuer ?? `urn:envoy-oidc-authz:${app}`;
    this.#audience = config.audience;
    this.#ttlSeconds = Math.max(1, Math.floor(config.ttl / 1000));
    this.#claims = Object.entries(config.claims).map(
      ([name, address]) => [name, compileClaimPath(address)] as const,
    );
    this.#keys = keys;
    const { alg, kid } = keys.signing;
    this.#encodedHeader = base64url(JSON.stringify({ alg, kid, typ: 'JWT' }));
    this.#signing = SIGNING[alg];
  }

  /** The key it signs with (for the JWKS and for tests). */
  get kid(): string {
    return this.#keys.signing.kid;
  }

  /**
   * The assertion for `input`, kept under `identity` and reused until its renewal time; `now` in
   * ms since the epoch.
   */
  issue(
    identity: object,
    input: IdentityInput,
    now: number,
    request: AssertionRequest = {},
  ): IssuedAssertion {
    const kept = this.#issued.get(identity);
    if (kept !== undefined && now < kept.renewAt) return kept;
    const issued = this.#sign(input, now, request);
    this.#issued.set(identity, issued);
    return issued;
  }

  #sign(input: IdentityInput, now: number, request: AssertionRequest): IssuedAssertion {
    const iat = Math.floor(now / 1000);
    const until = request.notAfter === undefined ? Infinity : Math.floor(request.notAfter / 1000);
    // Never longer than the credential it stands for.
    const exp = Math.max(iat + 1, Math.min(iat + this.#ttlSeconds, until));
    const payload: Record<string, unknown> = {};
    for (const [name, path] of this.#claims) {
      const value = path.read(input.claims);
      if (value === undefined || value === null) continue;
      const json = JSON.stringify(value);
      if (json !== undefined && Buffer.byteLength(json) <= maxClaimBytes) payload[name] = value;
    }
    if (payload['sub'] === undefined && request.subject !== undefined) {
      payload['sub'] = request.subject;
    }
    if (input.auth.method === 'bearer' && input.auth.clientId !== '') {
      payload['client_id'] = input.auth.clientId;
    }
    payload['iss'] = this.#issuer;
    payload['aud'] = this.#audience;
    payload['iat'] = iat;
    payload['exp'] = exp;
    payload['jti'] = randomBytes(16).toString('base64url');
    const signingInput = `${this.#encodedHeader}.${base64url(JSON.stringify(payload))}`;
    const signature = sign(this.#signing.digest, Buffer.from(signingInput), {
      key: this.#keys.signing.privateKey,
      ...this.#signing.options,
    });
    return {
      token: `${signingInput}.${signature.toString('base64url')}`,
      renewAt: (iat + (exp - iat) / 2) * 1000,
    };
  }
}
