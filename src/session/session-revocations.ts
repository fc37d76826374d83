/** Which sessions have ended: by logout of one session, or by the provider for a `sid` or `sub`. */
import type { Keyspace } from '../store/keyspace.ts';
import type { LogoutSubject, Mark } from '../store/keyspaces.ts';
import type { RevocationSubject } from './session-manager.ts';

export interface SessionRevocationKeyspaces {
  readonly endedSessions: Keyspace<string, Mark>;
  readonly logoutMarks: Keyspace<LogoutSubject, Mark>;
}

/**
 * Cookie sessions cannot be deleted from the browser that holds them, so an ended one is
 * remembered here until its max age and refused on load, on every replica sharing the store.
 */
export class SessionRevocations {
  readonly #keyspaces: SessionRevocationKeyspaces;
  readonly #now: () => number;

  constructor(keyspaces: SessionRevocationKeyspaces, now: () => number = Date.now) {
    this.#keyspaces = keyspaces;
    this.#now = now;
  }

  /** Ends one session (RP-initiated logout). */
  endSession(session: { readonly id: string }): Promise<void> {
    return this.#keyspaces.endedSessions.set(session.id, { at: this.#now() });
  }

  /** Ends every session the provider's `sid` or the user's `sub` opened up to now. */
  endAll(subject: LogoutSubject): Promise<void> {
    return this.#keyspaces.logoutMarks.set(subject, { at: this.#now() });
  }

  /** The check the session manager runs on every load. */
  readonly isRevoked = async (subject: RevocationSubject): Promise<boolean> => {
    const [ended, bySid, bySub] = await Promise.all([
      this.#keyspaces.endedSessions.get(subject.id),
      subject.sid === undefined
        ? undefined
        : this.#keyspaces.logoutMarks.get({ by: 'sid', value: subject.sid }),
      this.#keyspaces.logoutMarks.get({ by: 'sub', value: subject.sub }),
    ]);
    if (ended !== undefined) return true;
    return [bySid, bySub].some((mark) => mark !== undefined && mark.at >= subject.createdAt);
  };
}
