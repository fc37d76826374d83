/** Bearer token intake (SPEC §8): the token taken from `Authorization`, and a JWT's JOSE header checked before any key lookup. */
import { ASYMMETRIC_JWS_ALGS } from '../config/schema.ts';
import { isRecord } from '../is-record.ts';

/** Largest bearer token accepted, in bytes (SPEC §8: 16 KiB). */
export const maxBearerTokenBytes = 16 * 1024;

/** Longest `kid` accepted, in characters (SPEC §8). */
const maxKidLength = 256;

/** The asymmetric JWS algorithms a bearer JWT may use; `none` and every `HS*` are never in it. */
const allowedAlgs = new Set<string>(ASYMMETRIC_JWS_ALGS);

// RFC 6750 §2.1 b64token.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const KID = /^[A-Za-z0-9._-]+$/;
// A JOSE header with a 256-character kid fits easily; anything larger is not a header we issue.
const maxHeaderSegment = 2048;

/** What the `Authorization` header holds for a bearer step. */
export type BearerCredential =
  | { readonly kind: 'none' }
  | { readonly kind: 'malformed'; readonly reason: string; readonly scheme: TokenScheme }
  | { readonly kind: 'token'; readonly token: string; readonly scheme: TokenScheme };

/** `bearer` (RFC 6750) or `dpop` (RFC 9449 §7.1). */
export type TokenScheme = 'bearer' | 'dpop';

/**
 * Reads `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1), and with
 * `dpop` also `Authorization: DPoP <token>` (RFC 9449 §7.1). `none` when the header is absent or
 * uses another scheme (Basic, …), so the request goes on to the next step.
 * Oversized or empty tokens are `malformed` with a reason safe to show; the token itself never
 * appears in it. The characters of the token are not checked here, which costs about a
 * nanosecond per character: the caller runs {@link b64TokenProblem} unless the token is one
 * verified before (and so checked before).
 */
export function takeBearerCredential(header: string | undefined, dpop = false): BearerCredential {
  if (header === undefined || header.length < 5) return { kind: 'none' };
  let scheme: TokenScheme;
  let rest: string;
  if (header.length >= 7 && header.slice(0, 7).toLowerCase() === 'bearer ') {
    scheme = 'bearer';
    rest = header.slice(7);
  } else if (dpop && header.slice(0, 5).toLowerCase() === 'dpop ') {
    scheme = 'dpop';
    rest = header.slice(5);
  } else {
    return { kind: 'none' };
  }
  const token = rest.trim();
  // Length in UTF-16 units bounds the bytes of a b64token (ASCII only) before the regex runs.
  if (token.length > maxBearerTokenBytes) {
    return { kind: 'malformed', reason: 'token too large', scheme };
  }
  if (token === '') return { kind: 'malformed', reason: 'malformed token', scheme };
  return { kind: 'token', token, scheme };
}

/** Why `token` is not an RFC 6750 b64token, or `undefined` when it is one. */
export function b64TokenProblem(token: string): string | undefined {
  return B64TOKEN.test(token) ? undefined : 'malformed token';
}

/** How a token looks before anything is verified. */
export type TokenShape =
  { readonly kind: 'jwt' | 'opaque' } | { readonly kind: 'refused'; readonly reason: string };

/** RFC 9068 §4: `at+jwt`, compared case-insensitively, with or without `application/`. */
function isAccessTokenType(typ: string | undefined): boolean {
  if (typ === undefined) return false;
  const type = typ.toLowerCase();
  return type === 'at+jwt' || type === 'application/at+jwt';
}

/**
 * Classifies a token and, for a JWS, checks its protected header: `alg` in the asymmetric
 * allow-list, `kid` at most 256 of `[A-Za-z0-9._-]`, no `crit`, `typ` when required. This runs
 * before any key lookup, so `none`, `HS256` with the public key as secret, or a megabyte of `kid`
 * never cost a JWKS fetch. A token that is not three dot-separated base64url segments is
 * `opaque` (introspection, when on); five segments (a JWE) are refused.
 */
export function inspectToken(
  token: string,
  /** Require `typ: at+jwt` (RFC 9068 §2.1); `application/at+jwt` is the same type. */
  policy: { readonly requireJwtType: boolean },
): TokenShape {
  const firstDot = token.indexOf('.');
  if (firstDot === -1) return { kind: 'opaque' };
  const parts = token.split('.');
  if (parts.length === 5) return { kind: 'refused', reason: 'encrypted tokens are not accepted' };
  if (parts.length !== 3) return { kind: 'opaque' };
  const [encodedHeader = '', payload = '', signature = ''] = parts;
  if (encodedHeader.length > maxHeaderSegment) {
    return { kind: 'refused', reason: 'token header too large' };
  }
  if (!BASE64URL.test(encodedHeader) || !BASE64URL.test(payload)) {
    return { kind: 'refused', reason: 'malformed token' };
  }
  if (signature === '' || !BASE64URL.test(signature)) {
    return { kind: 'refused', reason: 'unsigned token' };
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8'));
  } catch {
    return { kind: 'refused', reason: 'malformed token header' };
  }
  if (!isRecord(header)) return { kind: 'refused', reason: 'malformed token header' };
  const { alg, kid, typ, crit } = header;
  if (typeof alg !== 'string' || !allowedAlgs.has(alg)) {
    return { kind: 'refused', reason: 'algorithm not allowed' };
  }
  if (kid !== undefined) {
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > maxKidLength) {
      return { kind: 'refused', reason: 'invalid kid' };
    }
    if (!KID.test(kid)) return { kind: 'refused', reason: 'invalid kid' };
  }
  if (typ !== undefined && typeof typ !== 'string') {
    return { kind: 'refused', reason: 'invalid typ' };
  }
  // RFC 7515 §4.1.11: we understand no extension, so any `crit` makes the token unusable.
  if (crit !== undefined) return { kind: 'refused', reason: 'unsupported critical header' };
  if (policy.requireJwtType && !isAccessTokenType(typ)) {
    return { kind: 'refused', reason: 'typ must be at+jwt' };
  }
  return { kind: 'jwt' };
}
