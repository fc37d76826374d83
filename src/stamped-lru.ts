/** An expiring LRU whose fills can be voided by an invalidation that happened while the value was being read. */
import { ExpiringLru, type ExpiringLruOptions } from './expiring-lru.ts';

/**
 * Values read from a store, cached so that a read overlapping an invalidation (a logout, an
 * update, a revocation) does not fill the cache with what it read before the write: take a
 * {@link StampedLru.stamp} before the read and hand it to `set`.
 */
export class StampedLru<V> {
  readonly #entries: ExpiringLru<V>;
  /** Bumped by every invalidation. */
  #generation = 0;

  constructor(options: ExpiringLruOptions) {
    this.#entries = new ExpiringLru(options);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value under `key` until its deadline, else `undefined`. */
  get(key: string): V | undefined {
    return this.#entries.get(key);
  }

  /** Taken before a read whose result is meant for {@link StampedLru.set}. */
  stamp(): number {
    return this.#generation;
  }

  /** Keeps `value` until `until` (ms since the epoch), unless an invalidation came since `stamp`. */
  set(key: string, value: V, until: number, stamp: number): void {
    if (stamp !== this.#generation) return;
    this.#entries.set(key, value, until);
  }

  /** Drops `key` only, leaving reads in flight free to fill the cache. */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** `key` changed in the store: forget it, and void every read in flight. */
  invalidate(key: string): void {
    this.#generation++;
    this.#entries.delete(key);
  }

  /** Records changed that no key names: forget everything, and void every read in flight. */
  invalidateAll(): void {
    this.#generation++;
    this.#entries.clear();
  }
}
