/** The one digest the server keys things by: SHA-256, base64url. */
import { hash } from 'node:crypto';

/**
 * SHA-256 of `value` (UTF-8), base64url without padding: 43 characters. How a secret or a
 * cookie becomes a key (a refresh token, a login `state`, a bearer token, a cookie value in a
 * cache) without the secret itself being kept, and how a long value (a session binding) becomes
 * a short, fixed-length one. The one-shot `hash` builds no `Hash` object per call, which matters
 * on the paths that run on every request.
 */
export function sha256Base64url(value: string): string {
  return hash('sha256', value, 'base64url');
}
