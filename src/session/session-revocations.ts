/** Which sessions have ended: by logout of one session, or by the provider for a `sid` or `sub`. */
import { ExpiringLru } from '../expiring-lru.ts';
import type { AppKeyspaces, LogoutSubject } from '../store/keyspaces.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { RevocationSubject } from './sessions.ts';

export type SessionRevocationKeyspaces = Pick<AppKeyspaces, 'endedSessions' | 'logoutMarks'>;

/**
 * How long a session found not revoked is trusted without asking a shared store again, in ms.
 * Keeps a hot session from costing three store reads per request while a logout on another
 * replica still takes effect well within the one second SPEC §11 allows.
 */
export const sharedStoreRecheckMs = 250;
const maxRemembered = 100_000;

/** Options of {@link SessionRevocations}. */
export interface SessionRevocationOptions {
  /** ms since the epoch; default `Date.now`. */
  readonly now?: () => number;
  /**
   * How long a session found not revoked is trusted, ms; default {@link sharedStoreRecheckMs}.
   * A store no other process writes to (`store.type: memory`) is changed only through this
   * object, which forgets what a logout touches, so there it may be trusted until evicted
   * (`Infinity`).
   */
  readonly recheckAfterMs?: number;
}

/**
 * Cookie sessions cannot be deleted from the browser that holds them, so an ended one is
 * remembered here until its max age and refused on load, on every replica sharing the store.
 */
export class SessionRevocations {
  readonly #keyspaces: SessionRevocationKeyspaces;
  readonly #durable: SessionRevocationKeyspaces;
  readonly #now: () => number;
  readonly #recheckAfterMs: number;
  /** Session ids found not revoked, each trusted until `#recheckAfterMs` later. */
  readonly #checked: ExpiringLru<true>;
  /**
   * Counts the logouts taken here, so a look-up that was under way while one was recorded does
   * not trust its (possibly older) answer.
   */
  #logouts = 0;

  /**
   * @param keyspaces - read on every session load and written by RP-initiated logout; may
   *   degrade to process memory while the store is down, so sessions keep working.
   * @param durable - the same records where a write must reach the shared store or fail, for
   *   provider-initiated logouts that are acknowledged to the provider.
   */
  constructor(
    keyspaces: SessionRevocationKeyspaces,
    durable: SessionRevocationKeyspaces = keyspaces,
    options: SessionRevocationOptions = {},
  ) {
    this.#keyspaces = keyspaces;
    this.#durable = durable;
    this.#now = options.now ?? Date.now;
    this.#recheckAfterMs = options.recheckAfterMs ?? sharedStoreRecheckMs;
    this.#checked = new ExpiringLru({ maxEntries: maxRemembered, now: this.#now });
  }

  /** Ends one session (RP-initiated logout). */
  async endSession(session: { readonly id: string }): Promise<void> {
    this.#forget(() => this.#checked.delete(session.id));
    try {
      await this.#keyspaces.endedSessions.set(session.id, { at: this.#now() });
    } finally {
      // Again once written: a look-up between the two may have read the store before the write.
      this.#forget(() => this.#checked.delete(session.id));
    }
  }

  /** Ends every session the provider's `sid` or the user's `sub` opened up to now. */
  async endAll(subject: LogoutSubject): Promise<void> {
    this.#forget(() => this.#checked.clear());
    try {
      await this.#durable.logoutMarks.set(subject, { at: this.#now() });
    } finally {
      this.#forget(() => this.#checked.clear());
    }
  }

  #forget(forget: () => void): void {
    this.#logouts++;
    forget();
  }

  /**
   * The check the sessions run on every load: `false` at once for a session trusted as not
   * revoked, else a promise of the store's answer.
   */
  readonly isRevoked = (
    subject: RevocationSubject,
    bound?: CallBound,
  ): boolean | Promise<boolean> =>
    this.#checked.get(subject.id) === true ? false : this.#lookUpAndTrust(subject, bound);

  async #lookUpAndTrust(
    subject: RevocationSubject,
    bound: CallBound | undefined,
  ): Promise<boolean> {
    const now = this.#now();
    const logouts = this.#logouts;
    const revoked = await this.#lookUp(subject, bound);
    if (!revoked && logouts === this.#logouts) {
      this.#checked.set(subject.id, true, now + this.#recheckAfterMs);
    }
    return revoked;
  }

  async #lookUp(subject: RevocationSubject, bound: CallBound | undefined): Promise<boolean> {
    const [ended, bySid, bySub] = await Promise.all([
      this.#keyspaces.endedSessions.get(subject.id, bound),
      subject.sid === undefined
        ? undefined
        : this.#keyspaces.logoutMarks.get({ by: 'sid', value: subject.sid }, bound),
      this.#keyspaces.logoutMarks.get({ by: 'sub', value: subject.sub }, bound),
    ]);
    if (ended !== undefined) return true;
    return [bySid, bySub].some((mark) => mark !== undefined && mark.at >= subject.createdAt);
  }
}
