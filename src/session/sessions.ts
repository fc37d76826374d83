/** The port the pipeline uses for an app's sessions, whichever `session.store` keeps them. */
import type { Keyspace } from '../store/keyspace.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { LoginMark } from '../store/keyspaces.ts';
import type { Clock } from '../clock.ts';
import type { SessionConfig } from '../config/schema.ts';
import type { LoginStates } from './login-state.ts';
import type { ServerSessionHandle } from './server-session-store.ts';
import type { SessionBinding } from './session-keys.ts';
import type { NewSession, Session, SessionChanges } from './session.ts';

/**
 * The resolved `session` settings of one app (times in ms; `secure` is decided per request by
 * `resolveSecure`, `store` by choosing the implementation), and what its sessions are bound to.
 */
export type SessionOptions = Omit<SessionConfig, 'store' | 'secure'> & {
  /**
   * What sealed sessions, login states and server records are bound to: a value sealed under
   * another binding is refused like a tampered one.
   */
  readonly binding: SessionBinding;
  /**
   * A cookie name this app used before (`_eoa`, the old default shared by every app): its
   * session and login-state cookies are expired wherever they are seen, and never sent
   * upstream. Unset: none.
   */
  readonly legacyCookieName?: string | undefined;
  /**
   * How far the clocks of the replicas may disagree, ms (`oidc.clockSkew`): a login state made
   * on another replica is judged with this much slack. Default 0.
   */
  readonly clockSkew?: number | undefined;
};

/** What either implementation is built with besides its options. */
export interface SessionsDeps {
  /** Default `Date.now`. */
  readonly now?: Clock;
  /** Marks redeemed login states on every replica; without it, only the cookie guards reuse. */
  readonly loginReplayMarks?: Keyspace<string, LoginMark>;
  /** Consulted on every load, also for cached sessions; default: nothing is revoked. */
  readonly isRevoked?: RevocationCheck;
}

/**
 * Who a revocation check is asked about (a session, or a cached one); a logout mark ends
 * sessions created before it.
 */
export type RevocationSubject = Pick<Session, 'id' | 'sub' | 'createdAt'> & {
  readonly sid?: string | undefined;
};

/**
 * Whether a session has been ended elsewhere (logout on another replica, back-channel); `bound`:
 * the store calls of the request loading it.
 */
export type RevocationCheck = (
  subject: RevocationSubject,
  bound?: CallBound,
) => boolean | Promise<boolean>;

/** Options of {@link Sessions.load}. */
export interface SessionLoadOptions {
  /**
   * The caller reads `session.tokens.idToken` on every request (the app forwards the ID token
   * upstream), so the decoded-session cache keeps it. Otherwise a cached session reads its ID
   * token back from the cookie when first asked for (logout's `id_token_hint`, refresh).
   * Default false.
   */
  readonly cacheIdToken?: boolean;
  /**
   * The store calls of the request (a Check): the store reads of the load wait no longer than
   * it may (see {@link CallBound}). Default: each read waits the store's own call timeout.
   */
  readonly bound?: CallBound;
}

/** Where a loaded session lives; hand it back to `update`. */
export type SessionRef =
  { readonly kind: 'cookie' } | { readonly kind: 'server'; readonly handle: ServerSessionHandle };

/** Why a session cookie did not yield a valid session. */
export type SessionRejection =
  | 'max_age'
  | 'idle'
  | 'revoked'
  /**
   * Not decodable with any configured secret, tampered, of another shape, or sealed for
   * another app or deployment (indistinguishable from tampering, by design).
   */
  | 'undecodable'
  /** Only cookies under the app's legacy name: expired, the browser logs in again. */
  | 'legacy'
  /** A server ticket whose record is gone or does not open with its key. */
  | 'unknown';

/** The outcome of {@link Sessions.load}. */
export type SessionLoad =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'valid';
      /**
       * The whole session. From the decoded-session cache, its refresh token and an ID token
       * the cache did not keep are read back from the request's cookie on first access.
       */
      readonly session: Session;
      /**
       * Stands for this decoded session while it stays cached: the same object for every
       * request presenting the same cookie (until it is evicted, expires or is re-issued), so
       * what is derived from it can be remembered. A fresh object otherwise.
       */
      readonly identity: object;
      readonly ref: SessionRef;
      /** Session and login-state cookie names in the request, to strip upstream. */
      readonly cookieNames: readonly string[];
      /** A re-issued cookie recording use (at most once per touch interval); usually empty. */
      readonly setCookie: readonly string[];
    }
  | {
      readonly kind: 'expired' | 'invalid';
      readonly reason: SessionRejection;
      readonly cookieNames: readonly string[];
      /** Expiry lines for the dead session's cookies. */
      readonly setCookie: readonly string[];
    };

/** A session after `create` or `update`, with the lines that carry it to the browser. */
export interface SessionWrite {
  readonly session: Session;
  readonly ref: SessionRef;
  readonly setCookie: readonly string[];
}

/**
 * The sessions of one app: `CookieSessions` (the whole session sealed in the cookie) or
 * `ServerSessions` (the cookie holds a ticket to a record in the store), chosen once at start
 * from `session.store`. Built once; every method is safe to call concurrently. `secure` is the
 * per-request cookie mode from `resolveSecure`.
 */
export interface Sessions {
  readonly loginStates: LoginStates;

  /** Every session and login-state cookie name the request carries, legacy ones included. */
  cookieNames(cookies: ReadonlyMap<string, string>): string[];

  /**
   * Reads the request's session. Enforces `maxAge` and `idleTimeout` here, whatever the cookie's
   * own expiry says, and asks the revocation check on every load (cached or not). Answers
   * without a promise when it needs no I/O (a cookie session trusted as not revoked).
   * @throws AuthzError `STORE_UNAVAILABLE` when a server session cannot be read (a rejected
   *   promise); `SessionTooLargeError` when a cookie session re-issued to record its use no
   *   longer fits (thrown at once when the load was synchronous).
   */
  load(
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    options?: SessionLoadOptions,
  ): SessionLoad | Promise<SessionLoad>;

  /**
   * Starts a session after login. Any session the request still carried is ended first (a new
   * login never reuses an old session id).
   * @throws AuthzError `STORE_UNAVAILABLE` (server store); `SessionTooLargeError` when
   *   a cookie session is too large for the cookie chunks.
   */
  create(
    data: NewSession,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite>;

  /**
   * Replaces tokens and/or claims (e.g. after a refresh) and records use. Cookie sessions get
   * new `set-cookie` lines; server sessions are rewritten in place and need none.
   * @throws as `create`.
   */
  update(
    current: { readonly session: Session; readonly ref: SessionRef },
    changes: SessionChanges,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite>;

  /**
   * Ends the request's session: forgets its cached decode, deletes a server record, and returns
   * expiry lines for every session cookie the request carries.
   * @throws AuthzError `STORE_UNAVAILABLE` when a server record cannot be deleted.
   */
  end(cookies: ReadonlyMap<string, string>, secure: boolean): Promise<string[]>;

  /**
   * Back-channel logout by IdP session: deletes every server session `sid` opened and returns
   * how many. Cookie sessions cannot be reached here (0); the revocation check refuses them.
   */
  endBySid(sid: string): Promise<number>;

  /** Back-channel logout by subject: as {@link Sessions.endBySid}, for every session of `sub`. */
  endBySub(sub: string): Promise<number>;
}
