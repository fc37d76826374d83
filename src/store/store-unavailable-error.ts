/** The store could not be used: a failed command or an open breaker, with a hint when to retry. */
import { AuthzError } from '../errors.ts';

/** Why the store was unavailable. */
export type StoreUnavailableReason = 'failure' | 'circuit_open';

/**
 * `STORE_UNAVAILABLE` (503). Requests that need the store (server sessions) answer 503 with
 * `Retry-After: retryAfterSeconds`; never a login, which would only loop.
 */
export class StoreUnavailableError extends AuthzError {
  readonly reason: StoreUnavailableReason;
  constructor(
    reason: StoreUnavailableReason,
    options: { retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super('STORE_UNAVAILABLE', 503, 'session store unavailable, try again shortly', {
      detail: `store: ${reason}`,
      cause: options.cause,
      retryAfterSeconds: Math.max(1, Math.ceil((options.retryAfterMs ?? 0) / 1000)),
    });
    this.name = 'StoreUnavailableError';
    this.reason = reason;
  }
}
