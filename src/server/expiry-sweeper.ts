/** Expires whatever stays too long in a set, with one timer for all of it instead of one per item. */

/** The timer functions the sweeper uses; tests pass their own to sweep on demand. */
export interface SweepTimer {
  start(callback: () => void, periodMs: number): unknown;
  stop(handle: unknown): void;
}

const realTimer: SweepTimer = {
  start: (callback, periodMs) => setInterval(callback, periodMs).unref(),
  stop: (handle) => clearInterval(handle as NodeJS.Timeout),
};

/**
 * Items added stay until {@link delete}d or expired: an item still present after between
 * `timeoutMs` and twice that is handed to `onExpire` (two generations swept once per
 * `timeoutMs`). Adding and deleting cost one `Set` operation, so it fits a per-request path; the
 * timer runs only while something is in it and never keeps the process alive.
 */
export class ExpirySweeper<T> {
  readonly #timeoutMs: number;
  readonly #onExpire: (item: T) => void;
  #young = new Set<T>();
  #old = new Set<T>();
  readonly #clock: SweepTimer;
  #timer: unknown;

  constructor(timeoutMs: number, onExpire: (item: T) => void, timer: SweepTimer = realTimer) {
    this.#timeoutMs = timeoutMs;
    this.#onExpire = onExpire;
    this.#clock = timer;
  }

  add(item: T): void {
    this.#young.add(item);
    this.#timer ??= this.#clock.start(() => this.#sweep(), this.#timeoutMs);
  }

  delete(item: T): void {
    if (!this.#young.delete(item)) this.#old.delete(item);
  }

  /** Forgets every item and stops the timer. */
  clear(): void {
    this.#young.clear();
    this.#old.clear();
    this.#stop();
  }

  #sweep(): void {
    const expired = this.#old;
    this.#old = this.#young;
    this.#young = new Set();
    if (this.#old.size === 0 && expired.size === 0) {
      this.#stop();
      return;
    }
    for (const item of expired) this.#onExpire(item);
  }

  #stop(): void {
    if (this.#timer !== undefined) this.#clock.stop(this.#timer);
    this.#timer = undefined;
  }
}
