/** Which sessions have ended: by logout of one session, or by the provider for a `sid` or `sub`. */
import { ExpiringLru } from '../expiring-lru.ts';
import type { AppKeyspaces, LogoutSubject } from '../store/keyspaces.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { RevocationSubject } from './sessions.ts';

export type SessionRevocationKeyspaces = Pick<AppKeyspaces, 'endedSessions' | 'logoutMarks'>;

/**
 * How long a session found not revoked is trusted without asking the store again, in ms. Keeps
 * a hot session from costing three store reads per request while a logout on another replica
 * still takes effect well within the one second SPEC §11 allows.
 */
const recheckAfterMs = 250;
const maxRemembered = 100_000;

/**
 * Cookie sessions cannot be deleted from the browser that holds them, so an ended one is
 * remembered here until its max age and refused on load, on every replica sharing the store.
 */
export class SessionRevocations {
  readonly #keyspaces: SessionRevocationKeyspaces;
  readonly #durable: SessionRevocationKeyspaces;
  readonly #now: () => number;
  /** Session ids found not revoked, each trusted until `recheckAfterMs` later. */
  readonly #checked: ExpiringLru<true>;

  /**
   * @param keyspaces - read on every session load and written by RP-initiated logout; may
   *   degrade to process memory while the store is down, so sessions keep working.
   * @param durable - the same records where a write must reach the shared store or fail, for
   *   provider-initiated logouts that are acknowledged to the provider.
   */
  constructor(
    keyspaces: SessionRevocationKeyspaces,
    durable: SessionRevocationKeyspaces = keyspaces,
    now: () => number = Date.now,
  ) {
    this.#keyspaces = keyspaces;
    this.#durable = durable;
    this.#now = now;
    this.#checked = new ExpiringLru({ maxEntries: maxRemembered, now });
  }

  /** Ends one session (RP-initiated logout). */
  endSession(session: { readonly id: string }): Promise<void> {
    this.#checked.delete(session.id);
    return this.#keyspaces.endedSessions.set(session.id, { at: this.#now() });
  }

  /** Ends every session the provider's `sid` or the user's `sub` opened up to now. */
  endAll(subject: LogoutSubject): Promise<void> {
    this.#checked.clear();
    return this.#durable.logoutMarks.set(subject, { at: this.#now() });
  }

  /** The check the sessions run on every load. */
  readonly isRevoked = async (subject: RevocationSubject, bound?: CallBound): Promise<boolean> => {
    if (this.#checked.get(subject.id) === true) return false;
    const now = this.#now();
    const revoked = await this.#lookUp(subject, bound);
    if (!revoked) this.#checked.set(subject.id, true, now + recheckAfterMs);
    return revoked;
  };

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
