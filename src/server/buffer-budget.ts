/** The process-wide budget of request bytes held while gRPC messages arrive. */

/** Something holding part of the budget that can be made to let go of it. */
export interface BudgetHolder {
  /** Bytes this holder has reserved; kept up to date by the budget. */
  reserved: number;
  /** Ends the holder's request and releases its reservation (through {@link BufferBudget.release}). */
  evict(): void;
}

/**
 * Reservations against a fixed number of bytes. When a new reservation does not fit, the holder
 * with the largest reservation is evicted, over and over, until it fits — or the newcomer is the
 * largest, and is refused. An unfinished upload can therefore take memory only from other large
 * unfinished uploads, never from the small Checks Envoy sends (a few KiB, usually whole in one
 * DATA frame).
 */
export class BufferBudget {
  readonly #limit: number;
  readonly #holders = new Set<BudgetHolder>();
  #used = 0;

  constructor(limitBytes: number) {
    this.#limit = limitBytes;
  }

  /** Bytes reserved now, over every holder. */
  get used(): number {
    return this.#used;
  }

  /** Reserves `bytes` more for `holder`; false (nothing reserved) when it cannot fit. */
  reserve(holder: BudgetHolder, bytes: number): boolean {
    while (this.#used + bytes > this.#limit) {
      const largest = this.#largestOther(holder);
      if (largest === undefined || largest.reserved <= holder.reserved + bytes) return false;
      largest.evict();
      // An evict that did not release is released here, so the loop always makes progress.
      if (this.#holders.has(largest)) this.release(largest);
    }
    this.#used += bytes;
    holder.reserved += bytes;
    this.#holders.add(holder);
    return true;
  }

  /** Gives back everything `holder` reserved. */
  release(holder: BudgetHolder): void {
    if (!this.#holders.delete(holder)) return;
    this.#used -= holder.reserved;
    holder.reserved = 0;
  }

  #largestOther(holder: BudgetHolder): BudgetHolder | undefined {
    let largest: BudgetHolder | undefined;
    for (const candidate of this.#holders) {
      if (candidate !== holder && (largest === undefined || candidate.reserved > largest.reserved))
        largest = candidate;
    }
    return largest;
  }
}
