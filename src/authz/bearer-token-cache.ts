/** Verified bearer tokens remembered by a hash of the token, bounded (least recently used out), each only until it expires. */
import { ExpiringLru } from '../expiring-lru.ts';

/**
 * A bounded LRU of verification results. Keys are `sha256Base64url` digests of tokens, never tokens; an entry
 * lives no longer than the `until` it was stored with (the token's `exp`, or earlier), so a hit
 * is never a token that has expired since. What a hit still needs (a revocation check) is the
 * caller's business.
 */
export class TokenCache<V> extends ExpiringLru<V> {}
