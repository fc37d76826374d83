/** Per-login secrets: PKCE S256 verifier and challenge (RFC 7636), state and nonce. */
import {
  calculatePKCECodeChallenge,
  randomNonce,
  randomPKCECodeVerifier,
  randomState,
} from 'openid-client';

/** Fresh values for one authorization request. */
export interface LoginSecrets {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** `BASE64URL(SHA256(codeVerifier))`, sent with `code_challenge_method=S256`. */
  readonly codeChallenge: string;
}

/** Generates state, nonce and a PKCE pair (each 32 random bytes, base64url). */
export async function createLoginSecrets(): Promise<LoginSecrets> {
  const codeVerifier = randomPKCECodeVerifier();
  return {
    state: randomState(),
    nonce: randomNonce(),
    codeVerifier,
    codeChallenge: await calculatePKCECodeChallenge(codeVerifier),
  };
}
