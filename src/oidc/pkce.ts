/** Per-login secrets: PKCE S256 verifier and challenge (RFC 7636), state and nonce. */
import { randomBytes } from 'node:crypto';
import { sha256Base64url } from '../digest.ts';

/** Fresh values for one authorization request. */
export interface LoginSecrets {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** `BASE64URL(SHA256(codeVerifier))`, sent with `code_challenge_method=S256`. */
  readonly codeChallenge: string;
}

/** Characters of each value: 43 base64url characters carry 258 random bits. */
const valueChars = 43;

/**
 * Generates state, nonce and a PKCE pair: each 43 base64url characters (258 random bits;
 * within RFC 7636 §4.1's 43–128) cut from one encoding of 99 random bytes, which is exactly
 * 132 characters, every one of them six random bits. One CSPRNG draw (pooled by the caller
 * when it passes `randomSource`), one encoding and a synchronous SHA-256: this runs on every
 * unauthenticated navigation.
 */
export function createLoginSecrets(
  randomSource: (bytes: number) => Buffer = randomBytes,
): LoginSecrets {
  const random = randomSource(99).toString('base64url');
  const codeVerifier = random.slice(2 * valueChars, 3 * valueChars);
  return {
    state: random.slice(0, valueChars),
    nonce: random.slice(valueChars, 2 * valueChars),
    codeVerifier,
    codeChallenge: sha256Base64url(codeVerifier),
  };
}
