/** Verified bearer tokens remembered by a hash of the token, bounded (least recently used out), each only until it expires. */
import { createHash } from 'node:crypto';

/** SHA-256 of a token, base64url: the only form in which a token is kept as a key. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

interface Entry<V> {
  readonly value: V;
  /** ms since the epoch after which the entry is gone. */
  readonly until: number;
}

export interface TokenCacheOptions {
  /** Most entries kept; 0 keeps none. */
  readonly maxEntries: number;
  /** Current time in milliseconds. */
  readonly now: () => number;
}

/**
 * A bounded LRU of verification results. Keys are {@link tokenDigest}s, never tokens; an entry
 * lives no longer than the `until` it was stored with (the token's `exp`, or earlier), so a hit
 * is never a token that has expired since. What a hit still needs (a revocation check) is the
 * caller's business.
 */
export class TokenCache<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: TokenCacheOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 0) {
      throw new RangeError(`maxEntries: must be a non-negative integer, got ${options.maxEntries}`);
    }
    this.#max = options.maxEntries;
    this.#now = options.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value stored for `digest`, unless absent or expired (then dropped). */
  get(digest: string): V | undefined {
    const entry = this.#entries.get(digest);
    if (entry === undefined) return undefined;
    if (entry.until <= this.#now()) {
      this.#entries.delete(digest);
      return undefined;
    }
    // Re-inserting moves the key to the young end of the Map's insertion order.
    this.#entries.delete(digest);
    this.#entries.set(digest, entry);
    return entry.value;
  }

  /** Stores `value` until `until` (ms since the epoch); the least recently used entry makes room. */
  set(digest: string, value: V, until: number): void {
    if (this.#max === 0 || until <= this.#now()) return;
    this.#entries.delete(digest);
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(digest, { value, until });
  }

  delete(digest: string): void {
    this.#entries.delete(digest);
  }
}
