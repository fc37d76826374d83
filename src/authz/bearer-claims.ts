/** What a verified bearer token's claims must also satisfy (SPEC §8): not an ID token, the right client, a clean identifier. */
import type { ClaimPath } from '../config/claim-address.ts';
import { isSafeHeaderValue } from '../header-value.ts';
import { isRecord } from '../is-record.ts';
import { ownString, type Claims } from './rules.ts';

/** Longest caller identifier accepted, in characters. */
const maxIdentifierLength = 256;

/** A caller as a verified bearer token describes it. */
export interface BearerIdentity {
  readonly claims: Claims;
  /** The sanitised value of the identifier claim. */
  readonly identifier: string;
  /** Granted scopes: the `scope` string's words and any `scp` array entries. */
  readonly scopes: ReadonlySet<string>;
  /** The token id (`jti`), checked against the revocation list on every request. */
  readonly jti: string | undefined;
  /** When the token stops being valid, ms since the epoch. */
  readonly expiresAt: number;
  /** The key or certificate the token is bound to, checked on every request. */
  readonly confirmation?: Confirmation;
}

/**
 * A binding this server verifies: the RFC 7638 thumbprint of the DPoP key (`cnf.jkt`, RFC 9449
 * §6.1) or the SHA-256 thumbprint of the client certificate (`cnf.x5t#S256`, RFC 8705 §3.1).
 */
export type Confirmation =
  { readonly kind: 'dpop'; readonly jkt: string } | { readonly kind: 'mtls'; readonly x5t: string };

export interface ClaimPolicy {
  /** The app's accepted audiences. */
  readonly audiences: readonly string[];
  /**
   * The app's own OAuth client id: a token for it alone is an ID token. `undefined` for an
   * API-only app, which has no client of its own.
   */
  readonly clientId: string | undefined;
  /** Client ids accepted as `azp`/`client_id`; empty: any. */
  readonly allowedClients: readonly string[];
  /** Claim naming the caller (`bearer.identifierClaim`, a claim address); default `sub`. */
  readonly identifier: ClaimPath;
  /**
   * Amazon Cognito: access tokens carry no `aud` but `client_id`, which then stands for the
   * audience, and `token_use: access` tells them from ID tokens (which do carry `aud`).
   */
  readonly cognitoAccessTokens?: boolean;
  /** Bindings verified per request (`bearer.dpop.enabled`, `bearer.mtls.enabled`); others are refused. */
  readonly bindings?: { readonly dpop: boolean; readonly mtls: boolean };
}

export type ClaimCheck =
  | { readonly kind: 'valid'; readonly identity: BearerIdentity }
  /**
   * `reason` names the failed check and is safe to log; the client sees only `invalid_token`,
   * and for a sender-constrained token (`binding`, how it is bound) the reason as
   * `error_description`.
   */
  | { readonly kind: 'invalid'; readonly reason: string; readonly binding?: TokenBinding };

/**
 * How a token is bound to its sender (its `cnf` claim, RFC 7800): `dpop` (`jkt`, RFC 9449
 * §6), `mtls` (`x5t#S256`, RFC 8705 §3.1), or `other` (`jwk`, `kid`, `jku`, …).
 */
export type TokenBinding = 'dpop' | 'mtls' | 'other';

/** Why a `cnf` token is refused; RFC 6750 §3 `error_description` and log reason alike. */
export const UNVERIFIED_BINDING =
  'sender-constrained token: its proof of possession cannot be verified here';

/** A SHA-256 thumbprint, base64url: 43 characters. */
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

/**
 * What the token's `cnf` binds it to: `undefined` when it has no `cnf`; a {@link Confirmation}
 * when the binding is one `policy` verifies and well-formed; else the refusal (every other
 * `cnf`, even `null`: the issuer meant to bind it; and one naming both a DPoP key and a
 * certificate, as only one binding is verified per token).
 */
export function confirmationOf(
  claims: Claims,
  policy: Pick<ClaimPolicy, 'bindings'>,
): Confirmation | Extract<ClaimCheck, { kind: 'invalid' }> | undefined {
  const binding = bindingOf(claims);
  if (binding === undefined) return undefined;
  const cnf = claims['cnf'] as Readonly<Record<string, unknown>>;
  // Bound both to a key and to a certificate: one binding verified would drop the other.
  const both = binding === 'dpop' && Object.hasOwn(cnf, 'x5t#S256');
  if (binding === 'dpop' && !both && policy.bindings?.dpop === true) {
    const jkt = cnf['jkt'];
    if (typeof jkt === 'string' && THUMBPRINT.test(jkt)) return { kind: 'dpop', jkt };
  }
  if (binding === 'mtls' && policy.bindings?.mtls === true) {
    const x5t = cnf['x5t#S256'];
    if (typeof x5t === 'string' && THUMBPRINT.test(x5t)) return { kind: 'mtls', x5t };
  }
  return { kind: 'invalid', reason: UNVERIFIED_BINDING, binding };
}

/** The binding a `cnf` claim names, or `undefined` when the token carries none. */
export function bindingOf(claims: Claims): TokenBinding | undefined {
  if (!Object.hasOwn(claims, 'cnf')) return undefined;
  const cnf = claims['cnf'];
  if (isRecord(cnf)) {
    if (Object.hasOwn(cnf, 'jkt')) return 'dpop';
    if (Object.hasOwn(cnf, 'x5t#S256')) return 'mtls';
  }
  return 'other';
}

// C0 and C1 controls, DEL, bidi embeddings/overrides/isolates and marks, line and paragraph
// separators (Trojan Source, CVE-2021-42574), and the delimiters of header lists and cookies.
const UNSAFE_IDENTIFIER =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069,;=]/;

/**
 * The identifier as it may go upstream, or `undefined` when it must be refused: empty, longer
 * than {@link maxIdentifierLength}, starting or ending with a space (header parsers drop it,
 * RFC 9110 §5.5, so `admin ` would arrive as `admin`), not a safe header value
 * ({@link isSafeHeaderValue}: a lone surrogate, say), or holding a control, bidi-override or
 * `,;=` character. Refused rather than cleaned, so two callers can never be folded into one
 * identifier.
 */
export function sanitiseIdentifier(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (value.length === 0 || value.length > maxIdentifierLength) return undefined;
  if (value.startsWith(' ') || value.endsWith(' ')) return undefined;
  return UNSAFE_IDENTIFIER.test(value) || !isSafeHeaderValue(value) ? undefined : value;
}

/** The token's scopes: `scope` (RFC 9068 §2.2.3, space-separated) and `scp` (an array, as some IdPs send). */
export function scopesOf(claims: Claims): ReadonlySet<string> {
  const scopes = new Set<string>();
  const scope = claims['scope'];
  if (typeof scope === 'string') {
    for (const word of scope.split(' ')) if (word !== '') scopes.add(word);
  }
  const scp = claims['scp'];
  if (Array.isArray(scp)) {
    for (const entry of scp as unknown[]) if (typeof entry === 'string') scopes.add(entry);
  } else if (typeof scp === 'string') {
    for (const word of scp.split(' ')) if (word !== '') scopes.add(word);
  }
  return scopes;
}

function audienceList(aud: unknown): readonly string[] {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return (aud as unknown[]).filter((a) => typeof a === 'string');
  return [];
}

/** A refusal naming the failed check. */
export function refused(reason: string): Extract<ClaimCheck, { kind: 'invalid' }> {
  return { kind: 'invalid', reason };
}

/**
 * Checks claims already proven authentic (a verified signature, or an active introspection
 * result) against the app's bearer policy:
 * - an audience the app accepts (introspection results are checked here; JWTs also by jose);
 * - sender-constrained only as `policy.bindings` allows: a `cnf` this app verifies becomes the
 *   identity's `confirmation`, any other is refused;
 * - not an ID token: no `nonce`, `at_hash` or `c_hash`, and not addressed to the app's own
 *   client id unless that id is a configured audience;
 * - several audiences need `azp` naming the app's client or an allowed client (OIDC Core
 *   §3.1.3.7 items 4–5, applied to access tokens);
 * - with `allowedClients`, `azp` (else `client_id`) must be one of them;
 * - `exp` present; the identifier claim present and clean ({@link sanitiseIdentifier}).
 *
 * @param subjectFallback - when the identifier claim is `sub` and absent, use `client_id`
 *   instead: RFC 7662 makes `sub` optional, and a client-credentials token names only its client.
 */
export function checkBearerClaims(
  claims: Claims,
  policy: ClaimPolicy,
  subjectFallback = false,
): ClaimCheck {
  let audiences = audienceList(claims['aud']);
  if (policy.cognitoAccessTokens === true) {
    // https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
    if (claims['token_use'] !== 'access') return refused('not an access token');
    const clientId = ownString(claims, 'client_id');
    if (claims['aud'] === undefined && clientId !== undefined) audiences = [clientId];
  }
  if (!audiences.some((aud) => policy.audiences.includes(aud))) {
    return refused('audience not accepted');
  }
  if (claims['nonce'] !== undefined || claims['at_hash'] !== undefined) {
    return refused('ID tokens are not accepted');
  }
  if (claims['c_hash'] !== undefined) return refused('ID tokens are not accepted');
  // RFC 9449 §7.1, RFC 8705 §3: a bound token is accepted only with a binding this app verifies
  // on every request (the proof, the certificate); any other `cnf` is refused.
  const confirmation = confirmationOf(claims, policy);
  if (confirmation?.kind === 'invalid') return confirmation;
  const own = policy.clientId;
  if (own !== undefined && audiences.includes(own) && !policy.audiences.includes(own)) {
    return refused('ID tokens are not accepted');
  }
  const azp = ownString(claims, 'azp');
  if (audiences.length > 1) {
    if (azp === undefined) return refused('azp required with several audiences');
    if (azp !== policy.clientId && !policy.allowedClients.includes(azp)) {
      return refused('azp is not an allowed client');
    }
  }
  if (policy.allowedClients.length > 0) {
    const client = azp ?? ownString(claims, 'client_id');
    if (client === undefined || !policy.allowedClients.includes(client)) {
      return refused('client not allowed');
    }
  }
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return refused('exp missing');
  let raw = policy.identifier.read(claims);
  if (raw === undefined && subjectFallback && policy.identifier.name === 'sub') {
    raw = claims['client_id'];
  }
  const identifier = sanitiseIdentifier(raw);
  if (identifier === undefined) return refused('identifier missing or unsafe');
  const jti = claims['jti'];
  return {
    kind: 'valid',
    identity: {
      claims,
      identifier,
      scopes: scopesOf(claims),
      jti: typeof jti === 'string' && jti !== '' ? jti : undefined,
      expiresAt: exp * 1000,
      ...(confirmation === undefined ? {} : { confirmation }),
    },
  };
}
