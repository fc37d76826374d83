/** A single-process, bounded, in-memory store backend with lazily enforced TTLs. */
import type { Clock } from '../clock.ts';
import { hasExpired } from '../expiry.ts';
import { checkTtl, type StoreBackend } from './store-backend.ts';

/** Options for {@link createMemoryBackend}. */
export interface MemoryBackendOptions {
  /** Most keys held at once; when full, the oldest-written key is evicted. Default 100,000. */
  readonly maxEntries?: number;
  /** How often expired keys are swept, in ms; `0` disables the sweep. Default 30,000. */
  readonly sweepIntervalMs?: number;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly now?: Clock;
}

interface ValueEntry {
  readonly kind: 'value';
  readonly value: string;
  expiresAt: number;
}

interface SetEntry {
  readonly kind: 'set';
  readonly members: Set<string>;
  expiresAt: number;
}

type Entry = ValueEntry | SetEntry;

/** The memory backend, with the sweep exposed so tests can run it on their own clock. */
export interface MemoryBackend extends StoreBackend {
  /** Removes every expired key now; returns how many were removed. */
  sweep(): number;
  /** Keys currently held, expired or not. */
  readonly size: number;
}

/** Runs a synchronous operation as a promise, so failures reject instead of throwing. */
function settle<T>(operation: () => T): Promise<T> {
  try {
    return Promise.resolve(operation());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/**
 * Creates a memory backend. Expired keys are invisible at once (checked on every read) and
 * reclaimed by a periodic sweep whose timer never keeps the process alive; `close()` stops it.
 */
export function createMemoryBackend(options: MemoryBackendOptions = {}): MemoryBackend {
  const maxEntries = options.maxEntries ?? 100_000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 30_000;
  const now = options.now ?? Date.now;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError('maxEntries must be a positive integer');
  }
  const entries = new Map<string, Entry>();

  function live(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (hasExpired(entry.expiresAt, now())) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  function liveValue(key: string): ValueEntry | undefined {
    const entry = live(key);
    if (entry === undefined) return undefined;
    if (entry.kind !== 'value') throw new TypeError('operation against a key holding a set');
    return entry;
  }

  function liveSet(key: string): SetEntry | undefined {
    const entry = live(key);
    if (entry === undefined) return undefined;
    if (entry.kind !== 'set') throw new TypeError('operation against a key holding a value');
    return entry;
  }

  function put(key: string, entry: Entry): void {
    // Deleting first moves the key to the end of the insertion order, so eviction takes the
    // key written longest ago.
    entries.delete(key);
    if (entries.size >= maxEntries) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    entries.set(key, entry);
  }

  function sweep(): number {
    const t = now();
    let removed = 0;
    for (const [key, entry] of entries) {
      if (hasExpired(entry.expiresAt, t)) {
        entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  const timer =
    sweepIntervalMs > 0
      ? setInterval(() => {
          sweep();
        }, sweepIntervalMs)
      : undefined;
  timer?.unref();

  return {
    get size() {
      return entries.size;
    },
    sweep,
    get(key) {
      return settle(() => liveValue(key)?.value);
    },
    set(key, value, ttlMs) {
      return settle(() => put(key, { kind: 'value', value, expiresAt: now() + checkTtl(ttlMs) }));
    },
    setIfAbsent(key, value, ttlMs) {
      return settle(() => {
        const ttl = checkTtl(ttlMs);
        if (live(key) !== undefined) return false;
        put(key, { kind: 'value', value, expiresAt: now() + ttl });
        return true;
      });
    },
    delete(key) {
      return settle(() => {
        const existed = live(key) !== undefined;
        entries.delete(key);
        return existed;
      });
    },
    deleteIfEquals(key, value) {
      return settle(() => {
        const entry = liveValue(key);
        if (entry?.value !== value) return false;
        entries.delete(key);
        return true;
      });
    },
    take(key) {
      return settle(() => {
        const entry = liveValue(key);
        if (entry === undefined) return undefined;
        entries.delete(key);
        return entry.value;
      });
    },
    expireIfEquals(key, value, ttlMs) {
      return settle(() => {
        const ttl = checkTtl(ttlMs);
        const entry = liveValue(key);
        if (entry?.value !== value) return false;
        entry.expiresAt = now() + ttl;
        return true;
      });
    },
    addMember(key, member, ttlMs) {
      return settle(() => {
        const expiresAt = now() + checkTtl(ttlMs);
        const entry = liveSet(key);
        if (entry === undefined) {
          put(key, { kind: 'set', members: new Set([member]), expiresAt });
        } else {
          entry.members.add(member);
          entry.expiresAt = Math.max(entry.expiresAt, expiresAt);
        }
      });
    },
    members(key) {
      return settle(() => {
        const entry = liveSet(key);
        return entry === undefined ? [] : [...entry.members];
      });
    },
    removeMember(key, member) {
      return settle(() => {
        const entry = liveSet(key);
        if (entry === undefined) return false;
        const removed = entry.members.delete(member);
        if (entry.members.size === 0) entries.delete(key);
        return removed;
      });
    },
    close() {
      return settle(() => {
        if (timer !== undefined) clearInterval(timer);
        entries.clear();
      });
    },
  };
}
