/** A bounded LRU of decoded sessions, keyed by a digest of the cookie value, so hot sessions skip decryption. */
import { hash } from 'node:crypto';
import { ExpiringLru } from '../expiring-lru.ts';
import type { Clock } from '../store/store-backend.ts';

/** Options for {@link SessionCache}. */
export interface SessionCacheOptions {
  /** Most sessions held; the least recently used goes first. Default 100,000. */
  readonly maxEntries?: number;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly now?: Clock;
}

/**
 * The key for a cookie value: the first 22 base64url characters (132 bits) of its SHA-256.
 * Holding the digest rather than the value keeps entries small and keeps cookie values out of
 * memory dumps. The one-shot `hash` costs half of a `createHash` object per call (hot path).
 */
export function cacheKeyFor(cookieValue: string): string {
  return hash('sha256', cookieValue, 'base64url').slice(0, 22);
}

/**
 * Decoded sessions by {@link cacheKeyFor} of their cookie; an entry never outlives the
 * session's own expiry.
 */
export class SessionCache<T> extends ExpiringLru<T> {
  constructor(options: SessionCacheOptions = {}) {
    super({ maxEntries: options.maxEntries ?? 100_000, now: options.now ?? Date.now });
  }
}
