/** Server sessions read from the store moments ago, reused for a quarter second per replica. */
import { StampedLru } from '../stamped-lru.ts';
import type { Clock } from '../clock.ts';
import type { LoadedServerSession } from './server-session-store.ts';

/**
 * How long a server session read from the store is reused without reading it again, in ms: the
 * same window as the revocation check's (`session-revocations.ts`). A hot session costs one store
 * read and one record decryption per window instead of one per request. A logout or refresh on
 * this replica replaces or drops the entry at once; one on another replica is seen here within
 * the window, well inside the second SPEC §10/§11 allow. Never reused past it, store down or
 * not: the next request reads the store again, and an outage is a 503 (SPEC §11).
 */
export const serverSessionReuseMs = 250;

/**
 * Loaded server sessions by `sha256Base64url` of the whole ticket (`<id>.<key>`), so a ticket with
 * the right id and a wrong key misses and is read and opened against the store like any other.
 * Bounded twice: at most `maxEntries`, least recently used first out; and every insertion drops
 * the expired entries at the least recently used end, so it holds about the sessions used in
 * the last quarter second, not every session seen since start.
 *
 * A read that overlaps an invalidation (a logout or an update here) does not fill the cache:
 * take a {@link ServerSessionCache.stamp} before reading the store and pass it to `set`.
 */
export class ServerSessionCache {
  readonly #entries: StampedLru<LoadedServerSession>;
  readonly #now: Clock;

  /**
   * @param maxEntries - most sessions held; default 10,000.
   * @param now - ms since the epoch; default `Date.now`.
   */
  constructor(maxEntries = 10_000, now: Clock = Date.now) {
    this.#entries = new StampedLru({ maxEntries, now });
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The session cached under `key` within its window, else `undefined`. */
  get(key: string): LoadedServerSession | undefined {
    return this.#entries.get(key);
  }

  /** Taken before a store read whose result is meant for {@link ServerSessionCache.set}. */
  stamp(): number {
    return this.#entries.stamp();
  }

  /**
   * Caches `loaded` for one window from now, unless something was invalidated since `stamp`
   * was taken (the read may predate a logout or an update).
   */
  set(key: string, loaded: LoadedServerSession, stamp: number): void {
    this.#entries.set(key, loaded, this.#now() + serverSessionReuseMs, stamp);
  }

  /** After writing `loaded` to the store: it replaces whatever this replica held for `key`. */
  replace(key: string, loaded: LoadedServerSession): void {
    this.#entries.invalidate(key);
    this.set(key, loaded, this.#entries.stamp());
  }

  /**
   * Drops `key` only: for a record found gone. Reads in flight may still fill the cache, so
   * requests with unknown tickets cannot keep everyone else's sessions out of it.
   */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** After deleting or failing to write `key`'s record: forget it, and any read in flight. */
  invalidate(key: string): void {
    this.#entries.invalidate(key);
  }

  /** After ending sessions by `sid` or `sub` (ids, not tickets, are known): forget them all. */
  invalidateAll(): void {
    this.#entries.invalidateAll();
  }
}
