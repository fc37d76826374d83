/** DPoP proofs (RFC 9449 §4.3): a proof JWT checked against the request it came with, with `node:crypto` alone. */
import { constants, createPublicKey, hash, verify, type KeyObject } from 'node:crypto';
import { ExpiringLru } from '../expiring-lru.ts';
import { isRecord } from '../is-record.ts';
import type { RequestModel } from './request.ts';

/** Largest proof accepted, in characters: an RSA-4096 key and every claim fit in a quarter of it. */
export const maxProofLength = 8 * 1024;
/** Longest `jti` accepted; RFC 9449 §11.1 asks for 96 bits of randomness, a UUID is 36. */
const maxJtiLength = 256;
/** Longest `nonce` accepted; ours are about 30 characters. */
const maxNonceLength = 256;
/** Smallest RSA modulus a proof key may have (RFC 7518 §3.3, §3.5). */
const minRsaBits = 2048;
/** Public keys kept by thumbprint: a client signs every proof with the same key. */
const keyCacheEntries = 10_000;
const keyCacheMs = 3_600_000;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** How one JWS algorithm verifies, and which keys it takes. */
interface AlgorithmProfile {
  /** `node:crypto` digest; `null` for EdDSA. */
  readonly digest: string | null;
  readonly key: 'ec' | 'rsa' | 'okp';
  /** ECDSA: the curve the key must be on, as `asymmetricKeyDetails.namedCurve` names it. */
  readonly curve?: string;
  readonly pss?: boolean;
}

const profiles: Readonly<Record<string, AlgorithmProfile>> = {
  ES256: { digest: 'sha256', key: 'ec', curve: 'prime256v1' },
  ES384: { digest: 'sha384', key: 'ec', curve: 'secp384r1' },
  ES512: { digest: 'sha512', key: 'ec', curve: 'secp521r1' },
  RS256: { digest: 'sha256', key: 'rsa' },
  RS384: { digest: 'sha384', key: 'rsa' },
  RS512: { digest: 'sha512', key: 'rsa' },
  PS256: { digest: 'sha256', key: 'rsa', pss: true },
  PS384: { digest: 'sha384', key: 'rsa', pss: true },
  PS512: { digest: 'sha512', key: 'rsa', pss: true },
  EdDSA: { digest: null, key: 'okp' },
};

/** What a proof must satisfy besides the request: `bearer.dpop` of one app. */
export interface ProofPolicy {
  /** Accepted `alg` values, asymmetric only. */
  readonly algs: readonly string[];
  /** Oldest `iat` accepted, ms before now. */
  readonly maxAgeMs: number;
  /** Newest `iat` accepted, ms after now; also added to `maxAgeMs`. */
  readonly clockSkewMs: number;
}

/** A proof that holds for its request; what is left is the token's `cnf.jkt`, the nonce and replay. */
export interface ValidProof {
  readonly kind: 'valid';
  /** RFC 7638 SHA-256 thumbprint of the proof's key, base64url. */
  readonly jkt: string;
  readonly jti: string;
  /** The proof's `nonce`, when it has one. */
  readonly nonce: string | undefined;
}

/** `reason` names the failed check and is safe to show and log; it never holds the proof. */
export type ProofCheck = ValidProof | { readonly kind: 'invalid'; readonly reason: string };

function invalid(reason: string): ProofCheck {
  return { kind: 'invalid', reason };
}

function parseSegment(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

// RFC 3986 §2.3 unreserved characters: a percent-encoded one is the character itself (§6.2.2.2).
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function normalisePercent(_match: string, hex: string): string {
  const character = String.fromCharCode(parseInt(hex, 16));
  return UNRESERVED.test(character) ? character : `%${hex.toUpperCase()}`;
}

/**
 * An HTTP(S) URI as RFC 9449 §4.3 compares `htu`: without query and fragment, normalised per
 * RFC 3986 §6.2.2 and §6.2.3 — scheme and host in lower case, the default port dropped, dot
 * segments removed, characters outside the URI syntax (non-ASCII, spaces) percent-encoded as
 * UTF-8, hex digits in upper case and unreserved characters decoded. `undefined` for anything
 * that is not an absolute `http`/`https` URI without user information.
 */
export function normaliseHtu(uri: string): string | undefined {
  const url = URL.parse(uri);
  if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  return `${url.protocol}//${url.host}${url.pathname.replace(/%([0-9A-Fa-f]{2})/g, normalisePercent)}`;
}

/** The request's own URI as {@link normaliseHtu} writes it: scheme, host, port and path. */
export function requestHtu(request: RequestModel): string | undefined {
  const port = request.port === undefined ? '' : `:${request.port}`;
  const host = request.host.includes(':') ? `[${request.host}]` : request.host;
  return normaliseHtu(`${request.scheme}://${host}${port}${request.path}`);
}

/**
 * RFC 7638 thumbprint input: the required members of the key type, in lexicographic order,
 * or `undefined` when one is missing or not a string.
 */
function thumbprintInput(jwk: Readonly<Record<string, unknown>>): string | undefined {
  const { kty } = jwk;
  const members =
    kty === 'EC'
      ? ['crv', 'kty', 'x', 'y']
      : kty === 'RSA'
        ? ['e', 'kty', 'n']
        : kty === 'OKP'
          ? ['crv', 'kty', 'x']
          : undefined;
  if (members === undefined) return undefined;
  const parts: string[] = [];
  for (const name of members) {
    const value = jwk[name];
    if (typeof value !== 'string' || value.length === 0) return undefined;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(value)}`);
  }
  return `{${parts.join(',')}}`;
}

/** The RFC 7638 SHA-256 thumbprint of a public JWK, as `cnf.jkt` carries it. */
export function jwkThumbprint(jwk: Readonly<Record<string, unknown>>): string | undefined {
  const input = thumbprintInput(jwk);
  return input === undefined ? undefined : hash('sha256', input, 'base64url');
}

/** Whether `key` is of the type and size `profile` signs with. */
function fits(key: KeyObject, profile: AlgorithmProfile): boolean {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  switch (profile.key) {
    case 'ec':
      return type === 'ec' && details?.namedCurve === profile.curve;
    case 'rsa':
      return type === 'rsa' && (details?.modulusLength ?? 0) >= minRsaBits;
    case 'okp':
      return type === 'ed25519' || type === 'ed448';
  }
}

/**
 * Checks DPoP proofs for one app. The proof's public key is taken from its header (`jwk`) and
 * kept by thumbprint, so a client's second proof costs one SHA-256 of its key members and one
 * signature verification; nothing else is kept per client.
 */
export class DpopProofVerifier {
  readonly #algs: ReadonlySet<string>;
  readonly #maxAgeMs: number;
  readonly #clockSkewMs: number;
  readonly #keys: ExpiringLru<KeyObject>;
  readonly #now: () => number;

  constructor(policy: ProofPolicy, now: () => number) {
    this.#now = now;
    this.#algs = new Set(policy.algs.filter((alg) => Object.hasOwn(profiles, alg)));
    this.#maxAgeMs = policy.maxAgeMs;
    this.#clockSkewMs = policy.clockSkewMs;
    this.#keys = new ExpiringLru({ maxEntries: keyCacheEntries, now });
  }

  /**
   * Checks `proof` (the `DPoP` header) for a request with `method` to `htu` (normalised, see
   * {@link requestHtu}) carrying `accessToken`, at `now` (ms): `typ`, `alg` from the allow-list,
   * a public `jwk` of the type the `alg` needs, the signature by that key, `htm`, `htu`, `iat`
   * within the window, `jti`, and `ath` the token's SHA-256. The checks that need no signature
   * come first, so junk costs no verification.
   */
  verify(proof: string, method: string, htu: string, accessToken: string, now: number): ProofCheck {
    if (proof.length > maxProofLength) return invalid('proof too large');
    const parts = proof.split('.');
    if (parts.length !== 3) return invalid('proof is not a JWS');
    const [encodedHeader = '', encodedPayload = '', encodedSignature = ''] = parts;
    if (!BASE64URL.test(encodedHeader) || !BASE64URL.test(encodedPayload)) {
      return invalid('malformed proof');
    }
    if (!BASE64URL.test(encodedSignature)) return invalid('unsigned proof');
    const header = parseSegment(encodedHeader);
    if (!isRecord(header)) return invalid('malformed proof header');
    const { typ, alg, jwk, crit } = header;
    if (typeof typ !== 'string' || typ.toLowerCase() !== 'dpop+jwt') {
      return invalid('typ must be dpop+jwt');
    }
    if (typeof alg !== 'string' || !this.#algs.has(alg)) return invalid('algorithm not allowed');
    if (crit !== undefined) return invalid('unsupported critical header');
    if (!isRecord(jwk)) return invalid('jwk missing');
    if (PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) {
      return invalid('jwk is not a public key');
    }
    const jkt = jwkThumbprint(jwk);
    if (jkt === undefined) return invalid('jwk is not a public key');

    const payload = parseSegment(encodedPayload);
    if (!isRecord(payload)) return invalid('malformed proof payload');
    const { htm, htu: claimedHtu, iat, jti, ath, nonce } = payload;
    if (htm !== method) return invalid('htm does not match the request method');
    if (typeof claimedHtu !== 'string' || normaliseHtu(claimedHtu) !== htu) {
      return invalid('htu does not match the request URI');
    }
    if (typeof iat !== 'number' || !Number.isFinite(iat)) return invalid('iat missing');
    const issuedAt = iat * 1000;
    if (issuedAt > now + this.#clockSkewMs) return invalid('proof issued in the future');
    if (issuedAt < now - this.#maxAgeMs - this.#clockSkewMs) return invalid('proof too old');
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > maxJtiLength) {
      return invalid('jti missing or too long');
    }
    if (typeof ath !== 'string' || ath !== hash('sha256', accessToken, 'base64url')) {
      return invalid('ath does not match the access token');
    }
    if (nonce !== undefined && (typeof nonce !== 'string' || nonce.length > maxNonceLength)) {
      return invalid('invalid nonce');
    }

    const profile = profiles[alg]!;
    const key = this.#keyFor(jwk, jkt, profile);
    if (key === undefined) return invalid('jwk does not fit the algorithm');
    const signature = Buffer.from(encodedSignature, 'base64url');
    const signed = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii');
    let good: boolean;
    try {
      good = verify(
        profile.digest,
        signed,
        {
          key,
          dsaEncoding: 'ieee-p1363',
          ...(profile.pss === true
            ? {
                padding: constants.RSA_PKCS1_PSS_PADDING,
                saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
              }
            : {}),
        },
        signature,
      );
    } catch {
      good = false;
    }
    if (!good) return invalid('proof signature invalid');
    return { kind: 'valid', jkt, jti, nonce };
  }

  /** The proof key as a `KeyObject`, when it is one `profile` signs with. */
  #keyFor(
    jwk: Readonly<Record<string, unknown>>,
    jkt: string,
    profile: AlgorithmProfile,
  ): KeyObject | undefined {
    let key = this.#keys.get(jkt);
    if (key === undefined) {
      try {
        key = createPublicKey({ key: jwk as never, format: 'jwk' });
      } catch {
        return undefined;
      }
      // Same thumbprint, same key members: the key is the one any later proof names.
      this.#keys.set(jkt, key, this.#now() + keyCacheMs);
    }
    return fits(key, profile) ? key : undefined;
  }
}
