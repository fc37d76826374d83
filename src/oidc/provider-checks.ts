/**
 * What a provider's discovery document says that no login can work with, in words that name
 * both sides and the fix: the issuer it announces, and the ID-token algorithms it signs with.
 */
import { issuerOfDiscoveryUrl } from '../config/issuer-key.ts';

/** The provider's words, bounded and on one line (a hostile document cannot forge log lines). */
function quoted(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

/**
 * The discovery document URL of `issuer` (OpenID Connect Discovery §4.1: the issuer, its
 * trailing slash removed, then `/.well-known/openid-configuration`). A URL that already is a
 * discovery document URL is kept, so the mismatch it causes can be explained.
 */
export function discoveryUrlOf(issuer: string): URL {
  if (issuerOfDiscoveryUrl(issuer) !== undefined) return new URL(issuer);
  const url = new URL(issuer);
  url.pathname = `${url.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`;
  return url;
}

/**
 * Why the `issuer` a discovery document announces cannot be used with `configured`, or
 * `undefined` when they are identical (Discovery §4.3 requires it; every ID token's `iss` is
 * compared to it character for character, OpenID Connect Core §3.1.3.7).
 */
export function issuerMismatch(configured: string, announced: unknown): string | undefined {
  if (announced === configured) return undefined;
  if (typeof announced !== 'string') {
    return `the provider's discovery document has no issuer; oidc.issuer is ${quoted(configured)}`;
  }
  const both = `the provider's issuer is ${quoted(announced)}, oidc.issuer is ${quoted(configured)}`;
  let fix = `set oidc.issuer to ${quoted(announced)} if that is the provider meant`;
  if (issuerOfDiscoveryUrl(configured) !== undefined) {
    fix = `oidc.issuer is the discovery document's URL: set it to ${quoted(announced)}`;
  } else if (`${announced}/` === configured || `${configured}/` === announced) {
    fix = `they differ only by a trailing slash, which ID tokens keep: set oidc.issuer to ${quoted(announced)} exactly`;
  } else if (announced.toLowerCase() === configured.toLowerCase()) {
    fix = `they differ only in case, which ID tokens keep: set oidc.issuer to ${quoted(announced)} exactly`;
  }
  return `${both}: ${fix}`;
}

/**
 * The ID-token signing algorithms both sides accept: those the provider announces
 * (`id_token_signing_alg_values_supported`) that `oidc.idTokenAlgs` allows. A provider that
 * omits the list, which Discovery §3 requires, is taken to sign with RS256, the algorithm that
 * list must include.
 */
export function sharedIdTokenAlgs(
  announced: readonly string[] | undefined,
  allowed: readonly string[],
): string[] {
  const provider = new Set(Array.isArray(announced) ? announced : ['RS256']);
  return allowed.filter((alg) => provider.has(alg));
}

/** Why no ID token of the provider can be accepted, or `undefined` when some can. */
export function idTokenAlgMismatch(
  announced: readonly string[] | undefined,
  allowed: readonly string[],
): string | undefined {
  if (sharedIdTokenAlgs(announced, allowed).length > 0) return undefined;
  const theirs = Array.isArray(announced)
    ? announced
        .slice(0, 20)
        .map((alg) => quoted(String(alg)))
        .join(', ')
    : '"RS256" (not announced)';
  return `the provider signs ID tokens only with ${theirs || 'nothing'}, none of them in oidc.idTokenAlgs (${allowed.join(', ')}): every login would fail; allow one of its asymmetric algorithms, or have the provider sign with one of yours`;
}

/** `oidc.par`: when logins push their parameters first (RFC 9126). */
export type ParMode = 'auto' | 'always' | 'never';

/** What a discovery document says of pushed authorization requests (RFC 9126 §5). */
export interface ParMetadata {
  readonly pushed_authorization_request_endpoint?: unknown;
  readonly require_pushed_authorization_requests?: unknown;
}

/** Whether a login pushes its request at a provider announcing `metadata`, under `mode`. */
export function pushesAuthorization(metadata: ParMetadata, mode: ParMode): boolean {
  if (mode === 'never') return false;
  return mode === 'always' || metadata.require_pushed_authorization_requests === true;
}

/**
 * Why no login can work with `mode` at a provider announcing `metadata`, or `undefined` when one
 * can: `always` (or the provider's own requirement) without an endpoint to push to, or `never`
 * at a provider that requires it.
 */
export function parMismatch(metadata: ParMetadata, mode: ParMode): string | undefined {
  const endpoint = metadata.pushed_authorization_request_endpoint;
  if (mode === 'never') {
    return metadata.require_pushed_authorization_requests === true
      ? 'the provider requires pushed authorization requests (require_pushed_authorization_requests) and oidc.par is never: every login would be refused; set oidc.par to auto'
      : undefined;
  }
  if (!pushesAuthorization(metadata, mode)) return undefined;
  if (typeof endpoint === 'string' && URL.canParse(endpoint)) return undefined;
  const why =
    mode === 'always'
      ? 'oidc.par is always'
      : 'the provider requires pushed authorization requests (require_pushed_authorization_requests)';
  return `${why} but its discovery document announces no pushed_authorization_request_endpoint: no login can start; set oidc.par to never if the provider does not support them, or fix its discovery document`;
}
