/** A bounded LRU of decoded sessions, keyed by a digest of the cookie value, so hot sessions skip decryption. */
import { hash } from 'node:crypto';
import type { Clock } from '../store/store-backend.ts';

/** Options for {@link SessionCache}. */
export interface SessionCacheOptions {
  /** Most sessions held; the least recently used goes first. Default 100,000. */
  readonly maxEntries?: number;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly now?: Clock;
}

interface Entry<T> {
  readonly value: T;
  readonly expiresAt: number;
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
 * An LRU of decoded values. Expiry is checked on read (no timer per entry); an entry never
 * outlives the `expiresAt` it was stored with.
 */
export class SessionCache<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #maxEntries: number;
  readonly #now: Clock;

  constructor(options: SessionCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#now = options.now ?? Date.now;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 0) {
      throw new RangeError('maxEntries must be a non-negative integer');
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached value for a digest from {@link cacheKeyFor}, or `undefined` (miss or expired). */
  get(key: string): T | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= this.#now()) return undefined;
    this.#entries.set(key, entry); // most recently used goes last
    return entry.value;
  }

  /** Caches `value` until `expiresAt` (ms since the epoch). */
  set(key: string, value: T, expiresAt: number): void {
    if (this.#maxEntries === 0 || expiresAt <= this.#now()) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expiresAt });
  }

  /** Forgets one entry (logout, revocation). */
  delete(key: string): boolean {
    return this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
