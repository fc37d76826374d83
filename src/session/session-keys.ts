/** Encryption keys derived from the configured session secrets, one per secret, named by `kid`. */
import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { sha256Base64url } from '../digest.ts';

/** The least secret length accepted, in bytes (a 256-bit key needs at least 256 bits of input). */
const MIN_SECRET_BYTES = 32;

/**
 * What a key is for. Each purpose gets its own key from the same secret, so a value sealed for
 * one purpose (a login-state cookie) can never be opened as another (a session cookie).
 */
export type KeyPurpose = 'session' | 'login-state' | 'server-record';

// Versioned labels: a future change of derivation gets a new label, never a silent reuse.
// v2 added the binding (app, provider, client, deployment); v1 keys are no longer derived.
const KEY_INFO = 'envoy-oidc-authz/v2/A256GCM/';
const KID_INFO = 'envoy-oidc-authz/v2/kid/';
const SALT = Buffer.from('envoy-oidc-authz session keys', 'utf8');

/**
 * What a sealed session or login state belongs to. Every element goes into the key derivation
 * (HKDF `info`), so a value sealed for one app, provider, client or deployment does not open
 * under another — even with the same secret — and is refused exactly like a tampered one.
 */
export interface SessionBinding {
  /** The top-level `deployment` label: sets apart deployments that share a secret. */
  readonly deployment: string;
  /** `store.redis.keyPrefix`: sets apart deployments that share a store. */
  readonly keyPrefix: string;
  readonly app: string;
  /** The app's OpenID Provider (`oidc.issuer`): a session from another provider never counts. */
  readonly issuer: string;
  /** The app's OAuth client (`oidc.clientId`). */
  readonly clientId: string;
}

/**
 * A fixed-length, unambiguous digest of a binding (SHA-256 over a JSON array, base64url): the
 * HKDF `info` stays short however long an issuer URL is, and no two bindings run together.
 */
function bindingDigest(binding: SessionBinding): string {
  const { deployment, keyPrefix, app, issuer, clientId } = binding;
  return sha256Base64url(JSON.stringify([deployment, keyPrefix, app, issuer, clientId]));
}

/**
 * A short public name of a binding (96 bits, base64url: 16 characters), written into each
 * server-session record's protected header (the AES-GCM AAD) so a record is only ever read
 * back by the app and deployment that wrote it. It names public settings only.
 */
export function bindingLabel(binding: SessionBinding): string {
  return bindingDigest(binding).slice(0, 16);
}

/**
 * A 256-bit AES key. The bytes live in a `KeyObject` and never appear in JSON, `inspect` or
 * string conversion, so a key cannot reach a log by accident.
 */
export class SecretKey {
  /** Public name of the key: derived separately from the secret and revealing nothing of it. */
  readonly kid: string;
  readonly #key: KeyObject;

  constructor(kid: string, key: KeyObject) {
    this.kid = kid;
    this.#key = key;
  }

  /** The key material, for `node:crypto` and `jose` calls only. */
  keyObject(): KeyObject {
    return this.#key;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}

/** The keys of one purpose: the first encrypts, every one decrypts. */
export interface KeyRing {
  /** Used to encrypt everything new. */
  readonly current: SecretKey;
  /** Looks a key up by `kid`; `undefined` for a key this ring does not hold. */
  byKid(kid: string): SecretKey | undefined;
  /** Every key, current first. */
  readonly all: readonly SecretKey[];
}

/**
 * Derives one AES-256-GCM key per secret with HKDF-SHA256 (RFC 5869), and its `kid` from a
 * second, independent HKDF output (48 bits, base64url: 8 characters). The HKDF `info` holds
 * the purpose and the {@link SessionBinding}, so both key and `kid` differ per app and
 * deployment: a foreign value names a `kid` this ring does not hold and is refused before any
 * decryption.
 *
 * @param secrets - configured secrets, each at least {@link MIN_SECRET_BYTES} bytes of UTF-8;
 *   the first encrypts, all decrypt (rotation).
 * @throws RangeError when there is no secret, one is too short, or two are the same.
 */
export function deriveKeyRing(
  secrets: readonly string[],
  purpose: KeyPurpose,
  binding: SessionBinding,
): KeyRing {
  const bound = `${purpose}/${bindingDigest(binding)}`;
  const keys = secrets.map((secret, index) => {
    const ikm = Buffer.from(secret, 'utf8');
    if (ikm.length < MIN_SECRET_BYTES) {
      throw new RangeError(
        `session secret #${index + 1} is shorter than ${MIN_SECRET_BYTES} bytes`,
      );
    }
    const key = Buffer.from(hkdfSync('sha256', ikm, SALT, KEY_INFO + bound, 32));
    const kid = Buffer.from(hkdfSync('sha256', ikm, SALT, KID_INFO + bound, 6)).toString(
      'base64url',
    );
    const secretKey = new SecretKey(kid, createSecretKey(key));
    key.fill(0);
    return secretKey;
  });
  const byKid = new Map<string, SecretKey>();
  for (const [index, key] of keys.entries()) {
    if (byKid.has(key.kid)) {
      throw new RangeError(`session secret #${index + 1} repeats an earlier secret`);
    }
    byKid.set(key.kid, key);
  }
  const [current] = keys;
  if (current === undefined) throw new RangeError('at least one session secret is required');
  return { current, all: keys, byKid: (kid) => byKid.get(kid) };
}
