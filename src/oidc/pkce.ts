/** Per-login secrets: PKCE S256 verifier and challenge (RFC 7636), state and nonce. */
import { hash, randomBytes } from 'node:crypto';

/** Fresh values for one authorization request. */
export interface LoginSecrets {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** `BASE64URL(SHA256(codeVerifier))`, sent with `code_challenge_method=S256`. */
  readonly codeChallenge: string;
}

/**
 * Generates state, nonce and a PKCE pair, each from 32 random bytes, base64url (43 characters,
 * within RFC 7636 §4.1's 43–128). One CSPRNG draw (pooled by the caller when it passes
 * `randomSource`) and a synchronous SHA-256: this runs on every unauthenticated navigation.
 */
export function createLoginSecrets(
  randomSource: (bytes: number) => Buffer = randomBytes,
): LoginSecrets {
  const random = randomSource(96);
  const codeVerifier = random.subarray(64, 96).toString('base64url');
  return {
    state: random.subarray(0, 32).toString('base64url'),
    nonce: random.subarray(32, 64).toString('base64url'),
    codeVerifier,
    codeChallenge: hash('sha256', codeVerifier, 'base64url'),
  };
}
