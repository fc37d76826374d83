/** Collects the one length-prefixed request message of a gRPC call, within its size cap and the process budget. */
import type { BudgetHolder, BufferBudget } from './buffer-budget.ts';

/** Why the request body cannot be taken further; the call ends with this status. */
export interface MessageProblem {
  readonly code: number;
  readonly details: string;
}

const RESOURCE_EXHAUSTED = 8;
const INTERNAL = 13;
const UNIMPLEMENTED = 12;

const tooLarge: MessageProblem = {
  code: RESOURCE_EXHAUSTED,
  details: 'request message too large',
};
const overBudget: MessageProblem = {
  code: RESOURCE_EXHAUSTED,
  details: 'too many request bytes in flight; try again',
};
const notOne: MessageProblem = { code: UNIMPLEMENTED, details: 'more than one request message' };
const notGrpc: MessageProblem = { code: INTERNAL, details: 'request body is not a gRPC message' };
const truncated: MessageProblem = { code: INTERNAL, details: 'request message truncated' };

/**
 * The bytes of one request as they arrive. The 5-byte gRPC prefix declares the message length:
 * a length over the cap is refused before anything else is read, and an acceptable one is
 * reserved from the {@link BufferBudget} whole, up front, so what the budget counts is an upper
 * bound of what is held. The common Check — the whole frame in one DATA chunk — is kept as that
 * chunk, without a copy; a message in several chunks is copied into one buffer of the declared
 * size (its pages are touched only as bytes arrive).
 */
export class RequestMessage implements BudgetHolder {
  reserved = 0;
  readonly #budget: BufferBudget;
  readonly #maxBytes: number;
  readonly #onEvicted: (problem: MessageProblem) => void;
  /** Bytes before the prefix is complete, or the whole frame while it is one chunk. */
  #head: Buffer | undefined;
  /** The whole frame (prefix included) once it spans chunks. */
  #frame: Buffer | undefined;
  #filled = 0;
  /** 5 + declared length, once the prefix is known. */
  #total = -1;
  #done = false;

  /** `onEvicted` ends the call when the budget takes the reservation back for others. */
  constructor(
    budget: BufferBudget,
    maxBytes: number,
    onEvicted: (problem: MessageProblem) => void,
  ) {
    this.#budget = budget;
    this.#maxBytes = maxBytes;
    this.#onEvicted = onEvicted;
  }

  /** Takes one chunk; a problem means the call is to end with it (nothing more is kept). */
  add(chunk: Buffer): MessageProblem | undefined {
    if (this.#done) return undefined;
    if (this.#total < 0) {
      const head = this.#head === undefined ? chunk : Buffer.concat([this.#head, chunk]);
      if (head.length < 5) {
        this.#head = head;
        return undefined;
      }
      const declared = head.readUInt32BE(1);
      if (declared > this.#maxBytes) return this.#fail(tooLarge);
      this.#total = 5 + declared;
      if (head.length > this.#total) return this.#fail(notOne);
      if (!this.#budget.reserve(this, this.#total)) return this.#fail(overBudget);
      if (head.length === this.#total) {
        this.#head = head;
        return undefined;
      }
      this.#head = undefined;
      this.#frame = Buffer.allocUnsafe(this.#total);
      head.copy(this.#frame, 0);
      this.#filled = head.length;
      return undefined;
    }
    const frame = this.#frame;
    if (frame === undefined || this.#filled + chunk.length > this.#total) return this.#fail(notOne);
    chunk.copy(frame, this.#filled);
    this.#filled += chunk.length;
    return undefined;
  }

  /**
   * The whole frame (flag byte, length, message) once the request has ended, or why not.
   * Releases the reservation: the caller decodes the frame at once.
   */
  finish(): Buffer | MessageProblem {
    if (this.#done) return truncated;
    const frame =
      this.#frame !== undefined && this.#filled === this.#total
        ? this.#frame
        : this.#head !== undefined && this.#head.length === this.#total
          ? this.#head
          : undefined;
    const problem = this.#total < 0 ? notGrpc : truncated;
    this.#drop();
    return frame ?? problem;
  }

  /** Lets go of everything (the call ended early: reset, timeout, eviction). */
  abandon(): void {
    this.#drop();
  }

  evict(): void {
    if (this.#done) return;
    this.#drop();
    this.#onEvicted(overBudget);
  }

  #fail(problem: MessageProblem): MessageProblem {
    this.#drop();
    return problem;
  }

  #drop(): void {
    this.#done = true;
    this.#head = undefined;
    this.#frame = undefined;
    this.#budget.release(this);
  }
}
