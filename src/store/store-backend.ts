/** The state port: primitive, Redis-mappable operations every store backend provides. */

/**
 * The store calls of one request (a Check): none waits past the request's `deadline`, and once
 * one of them ran out of time the others do not wait at all: they fall back (or fail) at once,
 * as if the store were known down. Only reads on the request path take one.
 */
export interface CallBound {
  /** When the request is answered whatever happens, on `performance.now()`'s clock. */
  readonly deadline: number;
  /** Set by the store when a call of this request ran out of time. */
  storeTimedOut: boolean;
}

/**
 * A key-value store with TTLs and sets. Keys and values are opaque strings; meaning, encoding
 * and lifetimes belong to the typed keyspaces built on top (`keyspace.ts`), never to the
 * backend. Every TTL is in milliseconds and must be a positive integer. Every operation is
 * atomic on its own; none is atomic with another.
 */
export interface StoreBackend {
  /**
   * The value, or `undefined` when absent or expired. `bound`: the request's, on the request
   * path (backends that cannot hang ignore it).
   */
  get(key: string, bound?: CallBound): Promise<string | undefined>;
  /** Sets (or replaces) the value with a lifetime of `ttlMs`. (Redis `SET PX`.) */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Sets the value only when the key is absent; `true` when it was set. (`SET NX PX`.) */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Removes the key (value or set); `true` when something was removed. (`DEL`.) */
  delete(key: string): Promise<boolean>;
  /** Removes the key only while it holds exactly `value` (owner-token release). */
  deleteIfEquals(key: string, value: string): Promise<boolean>;
  /** Returns the value and removes it in one step (one-time use). (`GETDEL`.) */
  take(key: string): Promise<string | undefined>;
  /** Gives the key a new lifetime only while it holds exactly `value` (owner-only lease renewal). */
  expireIfEquals(key: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Adds `member` to the set at `key`, which then lives at least `ttlMs` from now: its lifetime
   * is extended, never shortened (`SADD` + `PEXPIRE NX` + `PEXPIRE GT`).
   */
  addMember(key: string, member: string, ttlMs: number): Promise<void>;
  /** The members of the set at `key`; empty when absent or expired. (`SMEMBERS`.) */
  members(key: string): Promise<readonly string[]>;
  /** Removes `member` from the set; `true` when it was there. An emptied set disappears. */
  removeMember(key: string, member: string): Promise<boolean>;
  /** Releases resources (timers, connections). Further calls are undefined behaviour. */
  close(): Promise<void>;
}

/** A TTL as every backend takes it: whole milliseconds, rounded up; a RangeError unless positive. */
export function checkTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`ttlMs must be a positive number of milliseconds, got ${String(ttlMs)}`);
  }
  return Math.ceil(ttlMs);
}
