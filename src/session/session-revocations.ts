/** Which sessions have ended: by logout of one session, or by the provider for a `sid` or `sub`. */
import { RevocationTrust, sharedStoreRecheckMs } from './revocation-trust.ts';
import type { AppKeyspaces, LogoutSubject } from '../store/keyspaces.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { RevocationSubject } from './sessions.ts';

export type SessionRevocationKeyspaces = Pick<AppKeyspaces, 'endedSessions' | 'logoutMarks'>;

/**
 * Cookie sessions cannot be deleted from the browser that holds them, so an ended one is
 * remembered here until its max age and refused on load, on every replica sharing the store.
 */
export class SessionRevocations {
  readonly #keyspaces: SessionRevocationKeyspaces;
  readonly #durable: SessionRevocationKeyspaces;
  readonly #now: () => number;
  /** Session ids found not revoked. */
  readonly #trust: RevocationTrust;

  /**
   * @param keyspaces - read on every session load and written by RP-initiated logout; may
   *   degrade to process memory while the store is down, so sessions keep working.
   * @param durable - the same records where a write must reach the shared store or fail, for
   *   provider-initiated logouts that are acknowledged to the provider.
   * @param trust - what was found not revoked; default: trusted for
   *   {@link sharedStoreRecheckMs}, as over a shared store.
   */
  constructor(
    keyspaces: SessionRevocationKeyspaces,
    durable: SessionRevocationKeyspaces = keyspaces,
    options: { readonly now?: () => number; readonly trust?: RevocationTrust } = {},
  ) {
    this.#keyspaces = keyspaces;
    this.#durable = durable;
    this.#now = options.now ?? Date.now;
    this.#trust =
      options.trust ??
      new RevocationTrust({ now: this.#now, recheckAfterMs: sharedStoreRecheckMs });
  }

  /** Ends one session (RP-initiated logout). */
  endSession(session: { readonly id: string }): Promise<void> {
    return this.#trust.revoking(session.id, () =>
      this.#keyspaces.endedSessions.set(session.id, { at: this.#now() }),
    );
  }

  /** Ends every session the provider's `sid` or the user's `sub` opened up to now. */
  endAll(subject: LogoutSubject): Promise<void> {
    return this.#trust.revoking(undefined, () =>
      this.#durable.logoutMarks.set(subject, { at: this.#now() }),
    );
  }

  /**
   * The check the sessions run on every load: `false` at once for a session trusted as not
   * revoked, else a promise of the store's answer.
   */
  readonly isRevoked = (
    subject: RevocationSubject,
    bound?: CallBound,
  ): boolean | Promise<boolean> =>
    this.#trust.has(subject.id) ? false : this.#lookUpAndTrust(subject, bound);

  async #lookUpAndTrust(
    subject: RevocationSubject,
    bound: CallBound | undefined,
  ): Promise<boolean> {
    const lookUp = this.#trust.startLookUp();
    const revoked = await this.#lookUp(subject, bound);
    if (!revoked) this.#trust.trust(subject.id, lookUp);
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
