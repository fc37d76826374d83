/** Verified bearer tokens remembered by a hash of the token, bounded (least recently used out), each only until it expires. */
import { hash } from 'node:crypto';
import { ExpiringLru } from '../expiring-lru.ts';

/**
 * SHA-256 of a token, base64url: the only form in which a token is kept as a key. One-shot
 * `hash` (no `Hash` object per call) because it runs on every bearer request.
 */
export function tokenDigest(token: string): string {
  return hash('sha256', token, 'base64url');
}

/**
 * A bounded LRU of verification results. Keys are {@link tokenDigest}s, never tokens; an entry
 * lives no longer than the `until` it was stored with (the token's `exp`, or earlier), so a hit
 * is never a token that has expired since. What a hit still needs (a revocation check) is the
 * caller's business.
 */
export class TokenCache<V> extends ExpiringLru<V> {}
