/** How long a session may be used: its max age, idle timeout and touch interval, and revocation. */
import { hasExpired } from '../expiry.ts';
import type { RevocationCheck, RevocationSubject, SessionRejection } from './sessions.ts';
import type { Session } from './session.ts';
import type { CallBound } from '../store/store-backend.ts';

/** What the lifetime checks read; a cached session has it too. */
export type SessionTimes = Pick<Session, 'createdAt' | 'lastSeenAt'>;

/** The lifetime rules of one app's sessions, the same in cookies and in the store. */
export class SessionLifetime {
  readonly #maxAge: number;
  readonly #idleTimeout: number | undefined;
  readonly #isRevoked: RevocationCheck | undefined;
  /** How often use is recorded (a re-issued cookie or a record write), ms. */
  readonly touchInterval: number;

  /**
   * @param maxAge - absolute lifetime from login, ms.
   * @param idleTimeout - longest gap between uses, ms; `undefined` for none.
   * @param isRevoked - asked on every load; `undefined`: nothing is revoked.
   */
  constructor(maxAge: number, idleTimeout: number | undefined, isRevoked?: RevocationCheck) {
    this.#maxAge = maxAge;
    this.#idleTimeout = idleTimeout;
    this.#isRevoked = isRevoked;
    // Without an idle limit `lastSeenAt` decides nothing, so it is not worth a write.
    this.touchInterval =
      idleTimeout === undefined ? Number.POSITIVE_INFINITY : Math.min(60_000, idleTimeout / 10);
  }

  /** When the session's max age ends, ms since the epoch. */
  maxAgeEnd(session: SessionTimes): number {
    return session.createdAt + this.#maxAge;
  }

  /** When the session stops being valid, ms since the epoch. */
  deadline(session: SessionTimes): number {
    const absolute = session.createdAt + this.#maxAge;
    const idle = this.#idleTimeout;
    return idle === undefined ? absolute : Math.min(absolute, session.lastSeenAt + idle);
  }

  /** Why the session is over at `now`; `undefined` while it is not. */
  rejection(session: SessionTimes, now: number): SessionRejection | undefined {
    if (hasExpired(session.createdAt + this.#maxAge, now)) return 'max_age';
    const idle = this.#idleTimeout;
    if (idle !== undefined && hasExpired(session.lastSeenAt + idle, now)) return 'idle';
    return undefined;
  }

  /**
   * Whether the session was ended elsewhere (logout, back-channel logout): a boolean when known
   * without asking the store (the common case, so a hot session costs no promise), else a
   * promise.
   */
  revoked(session: RevocationSubject, bound?: CallBound): boolean | Promise<boolean> {
    return this.#isRevoked === undefined ? false : this.#isRevoked(session, bound);
  }
}
