/** A per-client-address throttle on failed bearer attempts (SPEC §8): too many within a window → 429 with `Retry-After`. */
import { hasExpired } from '../expiry.ts';

export interface FailureThrottleOptions {
  /** Failures per address within `windowMs` after which the address is refused. */
  readonly maxFailures: number;
  /** Length of the window, in milliseconds; it starts at an address's first failure. */
  readonly windowMs: number;
  /**
   * Most addresses tracked at once; when full, the address tracked longest is forgotten, so a
   * flood of spoofed sources costs bounded memory. Default 10,000.
   */
  readonly maxAddresses?: number;
  /** Current time in milliseconds. */
  readonly now: () => number;
}

interface Window {
  readonly startedAt: number;
  failures: number;
}

/**
 * Counts failures per client address in fixed windows. Only failures are counted: a client
 * with a good token is never slowed down, and one with a bad token stops costing signature
 * checks (or introspection calls) once it is refused up front. Per process: each replica
 * throttles what it sees.
 */
export class FailureThrottle {
  readonly #windows = new Map<string, Window>();
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  readonly #now: () => number;

  constructor(options: FailureThrottleOptions) {
    const problems: string[] = [];
    if (!Number.isInteger(options.maxFailures) || options.maxFailures < 1) {
      problems.push('maxFailures: must be a positive integer');
    }
    if (!Number.isFinite(options.windowMs) || options.windowMs <= 0) {
      problems.push('windowMs: must be a positive number of milliseconds');
    }
    const maxAddresses = options.maxAddresses ?? 10_000;
    if (!Number.isInteger(maxAddresses) || maxAddresses < 1) {
      problems.push('maxAddresses: must be a positive integer');
    }
    if (problems.length > 0) throw new RangeError(`failure throttle: ${problems.join('; ')}`);
    this.#max = options.maxFailures;
    this.#windowMs = options.windowMs;
    this.#maxAddresses = maxAddresses;
    this.#now = options.now;
  }

  #current(address: string, now: number): Window | undefined {
    const window = this.#windows.get(address);
    if (window === undefined) return undefined;
    if (hasExpired(window.startedAt + this.#windowMs, now)) {
      this.#windows.delete(address);
      return undefined;
    }
    return window;
  }

  /** Seconds until `address` may try again, or `undefined` when it is not throttled. */
  retryAfterSeconds(address: string): number | undefined {
    const now = this.#now();
    const window = this.#current(address, now);
    if (window === undefined || window.failures < this.#max) return undefined;
    return Math.max(1, Math.ceil((window.startedAt + this.#windowMs - now) / 1000));
  }

  /** Counts one failed attempt from `address`. */
  recordFailure(address: string): void {
    const now = this.#now();
    const window = this.#current(address, now);
    if (window !== undefined) {
      window.failures += 1;
      return;
    }
    if (this.#windows.size >= this.#maxAddresses) {
      const oldest = this.#windows.keys().next();
      if (oldest.done !== true) this.#windows.delete(oldest.value);
    }
    this.#windows.set(address, { startedAt: now, failures: 1 });
  }
}
