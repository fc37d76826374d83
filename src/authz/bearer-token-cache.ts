/** Verified bearer tokens remembered by a hash of the token, bounded (least recently used out), each only until it expires. */
import { ExpiringLru } from '../expiring-lru.ts';
import { digestForKey } from '../store/keyspaces.ts';

/** SHA-256 of a token, base64url: the only form in which a token is kept as a key. */
export const tokenDigest: (token: string) => string = digestForKey;

/**
 * A bounded LRU of verification results. Keys are {@link tokenDigest}s, never tokens; an entry
 * lives no longer than the `until` it was stored with (the token's `exp`, or earlier), so a hit
 * is never a token that has expired since. What a hit still needs (a revocation check) is the
 * caller's business.
 */
export class TokenCache<V> extends ExpiringLru<V> {}
