/** Keys this server signs upstream assertions with: read from PEM or JWK, checked once at load. */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { isRecord } from '../is-record.ts';

/** The JWS algorithms an upstream assertion may be signed with (RFC 7518 §3.1, RFC 8037). */
export const ASSERTION_ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'] as const;
export type AssertionAlg = (typeof ASSERTION_ALGS)[number];

/** A key as an assertion's `kid` names it and the JWKS publishes it. */
export interface PublishedKey {
  /** The RFC 7638 thumbprint of the public key: the same on every replica holding the key. */
  readonly kid: string;
  readonly alg: AssertionAlg;
  /** The public JWK with `kid`, `alg` and `use: sig`. */
  readonly jwk: Readonly<JsonWebKey>;
}

/** The key that signs, and the public keys published beside it. */
export interface SigningKeys {
  readonly signing: PublishedKey & { readonly privateKey: KeyObject };
  /** Further public keys published (a key set's other members), not used to sign. */
  readonly alsoPublished: readonly PublishedKey[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The algorithm a key signs with unless `alg` says otherwise. */
function defaultAlg(key: KeyObject): AssertionAlg | undefined {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
      return undefined;
    }
    case 'rsa':
      return 'RS256';
    case 'ed25519':
      return 'EdDSA';
    default:
      return undefined;
  }
}

/** Whether `key` can sign with `alg`; RSA keys under 2048 bits are refused. */
function fits(key: KeyObject, alg: AssertionAlg): boolean {
  if (alg === 'RS256' || alg === 'PS256') {
    return (
      key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048
    );
  }
  return defaultAlg(key) === alg;
}

/** RFC 7638 §3.2: the required members in lexicographic order, hashed with SHA-256. */
function thumbprint(jwk: JsonWebKey): string {
  const members: Record<string, unknown> =
    jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : jwk.kty === 'RSA'
        ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
        : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function published(key: KeyObject, alg: AssertionAlg): PublishedKey {
  const publicKey = key.type === 'public' ? key : createPublicKey(key);
  const publicJwk = publicKey.export({ format: 'jwk' });
  const kid = thumbprint(publicJwk);
  return { kid, alg, jwk: Object.freeze({ ...publicJwk, kid, alg, use: 'sig' }) };
}

/** One key of the text: a PEM block, or a JWK object. Private when it holds private members. */
function readKey(item: string | JsonWebKey): KeyObject {
  if (typeof item === 'string') {
    return item.includes('PUBLIC KEY') ? createPublicKey(item) : createPrivateKey(item);
  }
  return 'd' in item
    ? createPrivateKey({ key: item, format: 'jwk' })
    : createPublicKey({ key: item, format: 'jwk' });
}

function itemsOf(text: string): (string | JsonWebKey)[] | string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      return 'is not valid JSON';
    }
    if (!isRecord(parsed)) return 'is not a JWK or a JWK Set';
    const keys = parsed['keys'];
    if (keys === undefined) return [parsed];
    if (!Array.isArray(keys) || keys.length === 0 || !keys.every(isRecord)) {
      return 'is a JWK Set without keys';
    }
    return keys;
  }
  const blocks = trimmed.match(PEM_BLOCK);
  return blocks === null ? 'is neither PEM nor a JWK' : blocks;
}

/**
 * The keys of `text`: one or more PEM blocks, a JWK, or a JWK Set (`{"keys": [...]}`). The first
 * key must be private and signs, with `alg` or the algorithm its type implies (P-256 → ES256,
 * P-384 → ES384, P-521 → ES512, RSA → RS256, Ed25519 → EdDSA); every other key, private or
 * public, is only published (its public part), so the next key can be published before any
 * replica signs with it, and the last one kept while its tokens live. Returns why not, naming no
 * key material, when the text does not give that.
 */
export function readSigningKeys(text: string, alg?: AssertionAlg): SigningKeys | string {
  try {
    return readKeys(text, alg);
  } catch {
    // A key the library reads but cannot export as a JWK: said without its content.
    return 'holds a key that cannot be published as a JWK';
  }
}

function readKeys(text: string, alg: AssertionAlg | undefined): SigningKeys | string {
  const items = itemsOf(text);
  if (typeof items === 'string') return items;
  const keys: KeyObject[] = [];
  for (const [i, item] of items.entries()) {
    try {
      keys.push(readKey(item));
    } catch {
      return `key ${i + 1} cannot be read (not a supported PEM or JWK key)`;
    }
  }
  const [first, ...rest] = keys;
  if (first === undefined) return 'holds no key';
  if (first.type !== 'private') return 'its first key must be a private key: it signs';
  const signingAlg = alg ?? defaultAlg(first);
  if (signingAlg === undefined || !fits(first, signingAlg)) {
    return alg === undefined
      ? 'its first key is of a type that cannot sign assertions (EC P-256/384/521, RSA of 2048 bits or more, Ed25519)'
      : `its first key cannot sign ${alg}`;
  }
  const alsoPublished: PublishedKey[] = [];
  for (const [i, key] of rest.entries()) {
    const keyAlg = defaultAlg(key);
    if (keyAlg === undefined) return `key ${i + 2} is of a type that cannot sign assertions`;
    alsoPublished.push(published(key, keyAlg));
  }
  return { signing: { ...published(first, signingAlg), privateKey: first }, alsoPublished };
}

/** A fresh key for `alg`, for a server given none. */
export function generateSigningKeys(alg: AssertionAlg): SigningKeys {
  const { privateKey } =
    alg === 'RS256' || alg === 'PS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', {
            namedCurve: alg === 'ES256' ? 'P-256' : alg === 'ES384' ? 'P-384' : 'P-521',
          });
  return { signing: { ...published(privateKey, alg), privateKey }, alsoPublished: [] };
}
