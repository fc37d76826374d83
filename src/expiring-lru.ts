/** A bounded, nearly least-recently-used map whose entries also expire: no timers, expiry checked on read. */
import { hasExpired } from './expiry.ts';

export interface ExpiringLruOptions {
  /** Most entries kept; the least recently used goes first; 0 keeps none. */
  readonly maxEntries: number;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

interface Entry<V> {
  readonly value: V;
  /** ms since the epoch at which the entry is gone. */
  readonly until: number;
  /** When it was (re)inserted, counted in insertions: the Map's order is this order. */
  seq: number;
}

export class ExpiringLru<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #max: number;
  readonly #now: () => number;
  /** When expired entries were last swept from the old end (`now` of that `set`). */
  #sweptAt = Number.NaN;
  /** Insertions so far (see `Entry.seq`). */
  #seq = 0;
  /** How far behind the latest insertion a read entry must be to be moved to the young end. */
  readonly #moveAfter: number;

  constructor(options: ExpiringLruOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 0) {
      throw new RangeError(`maxEntries: must be a non-negative integer, got ${options.maxEntries}`);
    }
    this.#max = options.maxEntries;
    this.#now = options.now;
    this.#moveAfter = Math.floor(options.maxEntries / 2);
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The value stored under `key`, unless absent or expired (then dropped). A read entry among
   * the younger half keeps its place (a hot entry costs no Map write per read); an older one is
   * moved to the young end. So an entry read at least once every `maxEntries / 2` insertions
   * is never the one to go.
   */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (hasExpired(entry.until, this.#now())) {
      this.#entries.delete(key);
      return undefined;
    }
    if (this.#seq - entry.seq >= this.#moveAfter) {
      // Re-inserting moves the key to the young end of the Map's insertion order.
      this.#entries.delete(key);
      entry.seq = ++this.#seq;
      this.#entries.set(key, entry);
    }
    return entry.value;
  }

  /** Stores `value` until `until` (ms since the epoch); the least recently used makes room. */
  set(key: string, value: V, until: number): void {
    const now = this.#now();
    if (this.#max === 0 || hasExpired(until, now)) return;
    this.#entries.delete(key);
    // The Map runs from least to most recently used: expired entries at that end go, so a
    // cache of short-lived entries holds about those still live, not all seen since start.
    // Once per clock tick: every sweep starts by stepping over the slots the deletions at that
    // end left behind (until the Map is rehashed), which for a cache of entries re-inserted in
    // turn cost more than the rest of `set` together.
    if (now !== this.#sweptAt) {
      this.#sweptAt = now;
      for (const [oldKey, entry] of this.#entries) {
        if (!hasExpired(entry.until, now)) break;
        this.#entries.delete(oldKey);
      }
    }
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, until, seq: ++this.#seq });
  }

  delete(key: string): boolean {
    return this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
