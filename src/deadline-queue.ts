/**
 * Deadlines that all share one length, watched with one timer: a few dozen bytes per watch
 * instead of a timer each, for something that happens on every Check that waits on I/O.
 */
import { performance } from 'node:perf_hooks';

/** One watched deadline; `settle()` it when the work finished first, so it never fires. */
export interface Watch {
  settle(): void;
}

class Entry implements Watch {
  readonly deadline: number;
  onExpire: (() => void) | undefined;

  constructor(deadline: number, onExpire: () => void) {
    this.deadline = deadline;
    this.onExpire = onExpire;
  }

  settle(): void {
    this.onExpire = undefined;
  }
}

/**
 * Calls each watch's `onExpire` once its deadline (on `performance.now()`'s clock) has passed,
 * unless it was settled first. Deadlines must come in the order they were watched (one budget
 * for every watch, so they do): the queue is first in, first out, and the one timer is armed
 * for the oldest watch still open: it exists only while a watch is open, and every watch ends
 * by its deadline.
 */
export class DeadlineQueue {
  #entries: Entry[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  watch(deadline: number, onExpire: () => void): Watch {
    const entry = new Entry(deadline, onExpire);
    this.#entries.push(entry);
    if (this.#timer === undefined) this.#arm(deadline);
    return entry;
  }

  #arm(deadline: number): void {
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, deadline - performance.now()));
  }

  #sweep(): void {
    this.#timer = undefined;
    const now = performance.now();
    const entries = this.#entries;
    while (this.#head < entries.length) {
      const entry = entries[this.#head]!;
      if (entry.onExpire !== undefined && entry.deadline > now) break;
      this.#head += 1;
      const onExpire = entry.onExpire;
      entry.onExpire = undefined;
      onExpire?.();
    }
    if (this.#head === entries.length) {
      this.#entries = [];
      this.#head = 0;
      return;
    }
    if (this.#head > 1024 && this.#head * 2 > entries.length) {
      this.#entries = entries.slice(this.#head);
      this.#head = 0;
    }
    this.#arm(this.#entries[this.#head]!.deadline);
  }
}
