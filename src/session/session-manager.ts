/** One app's sessions: load, create, update and end them, in cookies or in the store. */
import { StoreUnavailableError, SessionTooLargeError, type AuthzError } from '../errors.ts';
import type { Keyspace } from '../store/keyspace.ts';
import type { Mark } from '../store/keyspaces.ts';
import type { Clock } from '../clock.ts';
import { createCookieCodec, type CookieCodec } from './cookie-codec.ts';
import { ChunkedCookie, expireCookie, type CookieScope, type SameSite } from './cookie-jar.ts';
import { LoginStates } from './login-state.ts';
import { ServerSessionCache, type LoadedServerSession } from './server-session-cache.ts';
import {
  formatTicket,
  ServerSessionStore,
  type ServerSessionHandle,
  type ServerSessionKeyspaces,
} from './server-session-store.ts';
import {
  cacheKeyFor,
  SessionCache,
  StringPool,
  toCachedSession,
  type CachedSession,
} from './session-cache.ts';
import { bindingLabel, deriveKeyRing, type SessionBinding } from './session-keys.ts';
import {
  newSessionIdentity,
  parseSession,
  type NewSession,
  type Session,
  type SessionClaims,
  type SessionTokens,
} from './session.ts';

/** The resolved `session` settings of one app (times in ms). */
export interface SessionManagerOptions {
  /** `cookie`: the session is sealed in the cookie; `server`: the cookie holds a ticket. */
  readonly store: 'cookie' | 'server';
  /** At least 32 bytes each; the first encrypts, all decrypt. */
  readonly secrets: readonly string[];
  /** e.g. `_eoa_grafana`; sent as `__Host-_eoa_grafana` when Secure and host-only. */
  readonly cookieName: string;
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
  /** Absolute session lifetime from login, ms. */
  readonly maxAge: number;
  /** Longest gap between uses, ms; unset = no idle limit. */
  readonly idleTimeout?: number | undefined;
  readonly sameSite: SameSite;
  readonly domain?: string | undefined;
  /** Most login flows pending at once per browser. */
  readonly maxPendingLogins: number;
  /** How long a login flow may take, ms. */
  readonly loginTimeout: number;
}

/** Who a revocation check is asked about. */
export interface RevocationSubject {
  /** The session's own identity. */
  readonly id: string;
  readonly sub: string;
  readonly sid?: string;
  /** When the session began, ms; a logout mark ends sessions issued before it. */
  readonly createdAt: number;
}

/** Whether a session has been ended elsewhere (logout on another replica, back-channel). */
export type RevocationCheck = (subject: RevocationSubject) => boolean | Promise<boolean>;

/** What the manager is built with besides its options. */
export interface SessionManagerDeps {
  /** Default `Date.now`. */
  readonly now?: Clock;
  /** Decoded cookie sessions; default a fresh cache of 100,000 entries. */
  readonly cache?: SessionCache<CachedSession>;
  /** Where server sessions live; required when `store` is `server`. */
  readonly serverSessions?: ServerSessionKeyspaces;
  /** Marks redeemed login states on every replica; without it, only the cookie guards reuse. */
  readonly loginReplayMarks?: Keyspace<string, Mark>;
  /** Consulted on every load, also for cached sessions; default: nothing is revoked. */
  readonly isRevoked?: RevocationCheck;
}

/** Options of {@link SessionManager.load}. */
export interface SessionLoadOptions {
  /**
   * The caller reads `session.tokens.idToken` on every request (the app forwards the ID token
   * upstream), so the decoded-session cache keeps it. Otherwise a cached session reads its ID
   * token back from the cookie when first asked for (logout's `id_token_hint`, refresh).
   * Default false.
   */
  readonly cacheIdToken?: boolean;
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

/** The outcome of {@link SessionManager.load}. */
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

/** What `update` may change; identity and times are kept by the manager. */
export interface SessionChanges {
  readonly tokens?: SessionTokens;
  readonly claims?: SessionClaims;
}

const noLines: readonly string[] = Object.freeze([]);
/** A login flow's id in its cookie name: 6 random bytes, base64url. */
const LOGIN_FLOW_ID = /^[A-Za-z0-9_-]{8}$/;

/** What the lifetime checks read; a cached session has it too. */
type SessionTimes = Pick<Session, 'createdAt' | 'lastSeenAt'>;

function storeUnavailable(cause: unknown): AuthzError {
  return cause instanceof StoreUnavailableError
    ? cause
    : new StoreUnavailableError('failure', { cause });
}

/**
 * The tokens of a cached session: those the cache left out are read back from the cookie
 * `value` on first access (once per instance), so the paths that need them (refresh, logout,
 * re-issuing the cookie) see the session exactly as sealed. Built per request, so a class with
 * getters on its prototype (one allocation) rather than a literal with accessors. `toJSON`
 * serialises every token; a spread (`{ ...tokens }`) would not, so copy fields by name.
 */
class CookieBackedTokens implements SessionTokens {
  readonly accessToken: string;
  readonly expiresAt: number;
  readonly #cached: CachedSession;
  readonly #value: string;
  readonly #codec: CookieCodec;
  #opened: SessionTokens | undefined;

  constructor(cached: CachedSession, value: string, codec: CookieCodec) {
    this.accessToken = cached.accessToken;
    this.expiresAt = cached.expiresAt;
    this.#cached = cached;
    this.#value = value;
    this.#codec = codec;
  }

  #fromCookie(): SessionTokens | undefined {
    return (this.#opened ??= parseSession(this.#codec.open(this.#value))?.tokens);
  }

  get refreshToken(): string | undefined {
    return this.#cached.hasRefreshToken ? this.#fromCookie()?.refreshToken : undefined;
  }

  get idToken(): string | undefined {
    const cached = this.#cached;
    if (cached.idToken !== undefined || !cached.hasIdToken) return cached.idToken;
    return this.#fromCookie()?.idToken;
  }

  toJSON(): SessionTokens {
    return plainTokens(this);
  }
}

/** `tokens` as plain data (read out of a cached session's accessors). */
function plainTokens(tokens: SessionTokens): SessionTokens {
  const { accessToken, refreshToken, idToken, expiresAt } = tokens;
  return {
    accessToken,
    ...(refreshToken === undefined ? {} : { refreshToken }),
    ...(idToken === undefined ? {} : { idToken }),
    expiresAt,
  };
}

/**
 * The sessions of one app. Built once at start; every method is safe to call concurrently.
 * `secure` is the per-request cookie mode from `resolveSecure`.
 */
export class SessionManager {
  /** Pending login flows of this app. */
  readonly loginStates: LoginStates;
  readonly #options: SessionManagerOptions;
  readonly #now: Clock;
  readonly #codec: CookieCodec;
  readonly #cache: SessionCache<CachedSession>;
  /** Claim strings shared by this app's cached sessions. */
  readonly #claimStrings = new StringPool();
  readonly #jar: ChunkedCookie;
  /** The legacy cookie name's session cookie, expired on sight; `undefined` when none. */
  readonly #legacy: ChunkedCookie | undefined;
  /** The legacy name's login-state prefix: its flows are `<prefix><8 characters>`. */
  readonly #legacyLogin: string | undefined;
  readonly #server: ServerSessionStore | undefined;
  readonly #serverCache: ServerSessionCache;
  readonly #isRevoked: RevocationCheck | undefined;
  readonly #touchInterval: number;
  readonly #scope: CookieScope;

  constructor(options: SessionManagerOptions, deps: SessionManagerDeps = {}) {
    if (options.store === 'server' && deps.serverSessions === undefined) {
      throw new TypeError('session.store "server" needs the server session keyspaces');
    }
    this.#options = options;
    this.#now = deps.now ?? Date.now;
    this.#codec = createCookieCodec(deriveKeyRing(options.secrets, 'session', options.binding));
    this.#cache = deps.cache ?? new SessionCache({ now: this.#now });
    const scope = {
      sameSite: options.sameSite,
      ...(options.domain === undefined ? {} : { domain: options.domain }),
    };
    this.#scope = scope;
    this.#jar = new ChunkedCookie({ name: options.cookieName, ...scope });
    const legacy = options.legacyCookieName;
    this.#legacy =
      legacy === undefined || legacy === options.cookieName
        ? undefined
        : new ChunkedCookie({ name: legacy, ...scope });
    this.#legacyLogin = this.#legacy === undefined ? undefined : `${legacy}_login_`;
    this.#server =
      options.store === 'server' && deps.serverSessions !== undefined
        ? new ServerSessionStore(deps.serverSessions, bindingLabel(options.binding))
        : undefined;
    // Server sessions read moments ago (at most 10,000); none held for cookie sessions.
    this.#serverCache = new ServerSessionCache(this.#server === undefined ? 0 : 10_000, this.#now);
    this.#isRevoked = deps.isRevoked;
    // Without an idle limit `lastSeenAt` decides nothing, so it is not worth a write.
    this.#touchInterval =
      options.idleTimeout === undefined
        ? Number.POSITIVE_INFINITY
        : Math.min(60_000, options.idleTimeout / 10);
    this.loginStates = new LoginStates(
      createCookieCodec(deriveKeyRing(options.secrets, 'login-state', options.binding)),
      {
        cookieName: options.cookieName,
        sameSite: options.sameSite,
        ...(options.domain === undefined ? {} : { domain: options.domain }),
        loginTimeout: options.loginTimeout,
        maxPendingLogins: options.maxPendingLogins,
        now: this.#now,
      },
      deps.loginReplayMarks,
    );
  }

  /** Counters of the session cookie codec (decrypt attempts), for metrics. */
  get codecStats(): Readonly<{ decrypts: number }> {
    return this.#codec.stats;
  }

  /** Every session and login-state cookie name the request carries, legacy ones included. */
  cookieNames(cookies: ReadonlyMap<string, string>): string[] {
    const names = [...this.#jar.presentNames(cookies), ...this.loginStates.cookieNames(cookies)];
    return this.#legacy === undefined ? names : [...names, ...this.#legacyNames(cookies, names)];
  }

  /** The request's cookies under the legacy name that are not also this app's own (`own`). */
  #legacyNames(cookies: ReadonlyMap<string, string>, own: readonly string[]): string[] {
    const names = this.#legacy?.presentNames(cookies) ?? [];
    const login = this.#legacyLogin;
    if (login !== undefined) {
      for (const name of cookies.keys()) {
        const bare = name.startsWith('__Host-') ? name.slice(7) : name;
        if (bare.startsWith(login) && LOGIN_FLOW_ID.test(bare.slice(login.length)))
          names.push(name);
      }
    }
    return names.length === 0 ? names : names.filter((name) => !own.includes(name));
  }

  /** Expiry lines for the request's legacy cookies (either security mode); usually none. */
  #legacyExpiry(cookies: ReadonlyMap<string, string>, secure: boolean): readonly string[] {
    if (this.#legacy === undefined) return noLines;
    const own = [...this.#jar.presentNames(cookies), ...this.loginStates.cookieNames(cookies)];
    const names = this.#legacyNames(cookies, own);
    return this.#expire(names, secure);
  }

  /** Expiry lines for `names`, under this app's cookie scope. */
  #expire(names: readonly string[], secure: boolean): readonly string[] {
    return names.length === 0
      ? noLines
      : names.map((name) => expireCookie(name, secure, this.#scope));
  }

  /** When the session stops being valid, ms since the epoch. */
  #deadline(session: SessionTimes): number {
    const absolute = session.createdAt + this.#options.maxAge;
    const idle = this.#options.idleTimeout;
    return idle === undefined ? absolute : Math.min(absolute, session.lastSeenAt + idle);
  }

  #rejection(session: SessionTimes, now: number): SessionRejection | undefined {
    if (now >= session.createdAt + this.#options.maxAge) return 'max_age';
    const idle = this.#options.idleTimeout;
    if (idle !== undefined && now >= session.lastSeenAt + idle) return 'idle';
    return undefined;
  }

  async #revoked(session: Session | CachedSession): Promise<boolean> {
    if (this.#isRevoked === undefined) return false;
    const subject: RevocationSubject = {
      id: session.id,
      sub: session.sub,
      createdAt: session.createdAt,
      ...(session.sid === undefined ? {} : { sid: session.sid }),
    };
    return this.#isRevoked(subject);
  }

  /** Cookie Max-Age, seconds: the browser keeps the cookie as long as the server would accept it. */
  #cookieMaxAge(session: Session, now: number): number {
    const until =
      this.#server === undefined
        ? this.#deadline(session)
        : session.createdAt + this.#options.maxAge;
    return Math.floor((until - now) / 1000);
  }

  /** Store TTL, ms: until the session's deadline. */
  #recordTtl(session: Session, now: number): number {
    return Math.max(1, this.#deadline(session) - now);
  }

  /**
   * Reads the request's session. Enforces `maxAge` and `idleTimeout` here, whatever the cookie's
   * own expiry says, and asks the revocation check on every load (cached or not).
   * @throws AuthzError `STORE_UNAVAILABLE` when a server session cannot be read.
   */
  async load(
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    options: SessionLoadOptions = {},
  ): Promise<SessionLoad> {
    // The request's cookies are scanned once for our names; the legacy ones are usually none.
    const session = this.#jar.presentNames(cookies);
    const own = [...session, ...this.loginStates.cookieNames(cookies)];
    const legacy = this.#legacy === undefined ? noLines : this.#legacyNames(cookies, own);
    const names = legacy.length === 0 ? own : [...own, ...legacy];
    const value = this.#jar.read(cookies, secure);
    if (value === undefined) {
      if (session.length === 0) {
        if (legacy.length === 0) return { kind: 'none' };
        const setCookie = this.#expire(legacy, secure);
        return { kind: 'invalid', reason: 'legacy', cookieNames: names, setCookie };
      }
      return this.#reject('invalid', 'undecodable', cookies, secure, names);
    }
    const now = this.#now();
    const loaded = await (this.#server === undefined
      ? this.#loadCookie(value, cookies, secure, names, now, options.cacheIdToken === true)
      : this.#loadServer(this.#server, value, cookies, secure, names, now));
    if (legacy.length === 0 || loaded.kind !== 'valid') return loaded;
    // Lines that re-issue the session already expire the legacy cookies (see #writeCookie).
    return loaded.setCookie.length === 0
      ? { ...loaded, setCookie: this.#expire(legacy, secure) }
      : loaded;
  }

  /** Expiry lines for every session cookie of the request, legacy ones included. */
  #clear(cookies: ReadonlyMap<string, string>, secure: boolean): string[] {
    const lines = this.#jar.clear(cookies, secure);
    const legacy = this.#legacyExpiry(cookies, secure);
    return legacy.length === 0 ? lines : [...lines, ...legacy];
  }

  #reject(
    kind: 'expired' | 'invalid',
    reason: SessionRejection,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    names: readonly string[],
  ): SessionLoad {
    return { kind, reason, cookieNames: names, setCookie: this.#clear(cookies, secure) };
  }

  /** The session sealed in a cookie value; `undefined` when it does not open or parse. */
  #open(value: string): Session | undefined {
    return parseSession(this.#codec.open(value));
  }

  async #loadCookie(
    value: string,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    names: readonly string[],
    now: number,
    cacheIdToken: boolean,
  ): Promise<SessionLoad> {
    const key = cacheKeyFor(value);
    let cached = this.#cache.get(key);
    // Decoded on this request: on a cache miss, or to add an ID token the entry left out.
    let opened: Session | undefined;
    if (
      cached === undefined ||
      (cacheIdToken && cached.hasIdToken && cached.idToken === undefined)
    ) {
      opened = this.#open(value);
      if (opened === undefined) {
        this.#cache.delete(key);
        return this.#reject('invalid', 'undecodable', cookies, secure, names);
      }
      cached = toCachedSession(opened, cacheIdToken, this.#claimStrings);
      this.#cache.set(key, cached, this.#deadline(opened));
    }
    const rejection = this.#rejection(cached, now);
    if (rejection !== undefined) {
      this.#cache.delete(key);
      return this.#reject('expired', rejection, cookies, secure, names);
    }
    if (await this.#revoked(cached)) {
      this.#cache.delete(key);
      return this.#reject('expired', 'revoked', cookies, secure, names);
    }
    if (now - cached.lastSeenAt < this.#touchInterval) {
      return {
        kind: 'valid',
        session: opened ?? this.#sessionFrom(cached, value),
        identity: cached,
        ref: { kind: 'cookie' },
        cookieNames: names,
        setCookie: noLines,
      };
    }
    // Re-issuing the cookie needs every token, so a cached session is opened again.
    opened ??= this.#open(value);
    if (opened === undefined) return this.#reject('invalid', 'undecodable', cookies, secure, names);
    const touched: Session = { ...opened, lastSeenAt: now };
    return {
      kind: 'valid',
      session: touched,
      identity: touched,
      ref: { kind: 'cookie' },
      cookieNames: names,
      setCookie: this.#writeCookie(touched, cookies, secure, now, cacheIdToken),
    };
  }

  /** A cached session as a whole `Session`, its left-out tokens read back from `value`. */
  #sessionFrom(cached: CachedSession, value: string): Session {
    const tokens = new CookieBackedTokens(cached, value, this.#codec);
    const { id, sub, sid, claims, createdAt, lastSeenAt } = cached;
    return sid === undefined
      ? { v: 1, id, sub, claims, tokens, createdAt, lastSeenAt }
      : { v: 1, id, sub, sid, claims, tokens, createdAt, lastSeenAt };
  }

  async #loadServer(
    server: ServerSessionStore,
    ticket: string,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    names: readonly string[],
    now: number,
  ): Promise<SessionLoad> {
    const cache = this.#serverCache;
    const key = cacheKeyFor(ticket);
    let loaded = cache.get(key);
    // A touch writes the record back, so it starts from a fresh read: a session deleted on
    // another replica within the cache window is not brought back to life.
    if (loaded === undefined || now - loaded.session.lastSeenAt >= this.#touchInterval) {
      const stamp = cache.stamp();
      try {
        loaded = await server.load(ticket);
      } catch (error) {
        throw storeUnavailable(error);
      }
      if (loaded === undefined) {
        cache.delete(key);
        return this.#reject('invalid', 'unknown', cookies, secure, names);
      }
      cache.set(key, loaded, stamp);
    }
    const { handle, session } = loaded;
    const rejection = this.#rejection(session, now);
    const revoked = rejection === undefined && (await this.#revoked(session));
    if (rejection !== undefined || revoked) {
      await server.delete(handle, session).catch(() => undefined); // its TTL ends it anyway
      cache.invalidate(key);
      return this.#reject('expired', rejection ?? 'revoked', cookies, secure, names);
    }
    const ref: SessionRef = { kind: 'server', handle };
    if (now - session.lastSeenAt < this.#touchInterval) {
      return {
        kind: 'valid',
        session,
        identity: session,
        ref,
        cookieNames: names,
        setCookie: noLines,
      };
    }
    const touched: Session = { ...session, lastSeenAt: now };
    await this.#writeServer(server, key, { handle, session: touched }, now);
    return {
      kind: 'valid',
      session: touched,
      identity: touched,
      ref,
      cookieNames: names,
      setCookie: noLines,
    };
  }

  /**
   * Writes a server session's record and puts it in this replica's cache under `key` (the
   * ticket's digest); on failure the entry is dropped, as the record may or may not have changed.
   * @throws AuthzError `STORE_UNAVAILABLE`.
   */
  async #writeServer(
    server: ServerSessionStore,
    key: string,
    loaded: LoadedServerSession,
    now: number,
  ): Promise<void> {
    try {
      await server.update(loaded.handle, loaded.session, this.#recordTtl(loaded.session, now));
    } catch (error) {
      this.#serverCache.invalidate(key);
      throw storeUnavailable(error);
    }
    this.#serverCache.replace(key, loaded);
  }

  /**
   * Seals a cookie session, primes the cache with the new value (with the ID token when
   * `keepIdToken`), and returns its lines (with expiry lines for legacy cookies).
   * @throws SessionTooLargeError when the sealed session needs more chunks than allowed.
   */
  #writeCookie(
    session: Session,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    now: number,
    keepIdToken = false,
  ): string[] {
    const value = this.#codec.seal(session);
    const maxAge = this.#cookieMaxAge(session, now);
    let lines: string[];
    try {
      lines = this.#jar.write(value, maxAge, cookies, secure);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new SessionTooLargeError(value.length, this.#jar.capacity(maxAge, secure));
    }
    const cached = toCachedSession(session, keepIdToken, this.#claimStrings);
    this.#cache.set(cacheKeyFor(value), cached, this.#deadline(session));
    const legacy = this.#legacyExpiry(cookies, secure);
    return legacy.length === 0 ? lines : [...lines, ...legacy];
  }

  /**
   * Starts a session after login. Any session the request still carried is ended first (a new
   * login never reuses an old session id).
   * @throws AuthzError `STORE_UNAVAILABLE` (server store); {@link SessionTooLargeError} when
   *   a cookie session is too large for the cookie chunks.
   */
  async create(
    data: NewSession,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite> {
    const now = this.#now();
    const session: Session = {
      v: 1,
      id: newSessionIdentity(),
      sub: data.sub,
      ...(data.sid === undefined ? {} : { sid: data.sid }),
      claims: data.claims,
      tokens: data.tokens,
      createdAt: now,
      lastSeenAt: now,
    };
    if (this.#server === undefined) {
      const previous = this.#jar.read(cookies, secure);
      if (previous !== undefined) this.#cache.delete(cacheKeyFor(previous));
      return {
        session,
        ref: { kind: 'cookie' },
        setCookie: this.#writeCookie(session, cookies, secure, now),
      };
    }
    await this.#endServer(this.#server, cookies, secure).catch(() => undefined);
    try {
      const { handle, ticket } = await this.#server.create(session, this.#recordTtl(session, now));
      // The browser's next request, right after the login redirect, needs no store read.
      this.#serverCache.replace(cacheKeyFor(ticket), { handle, session });
      const lines = this.#jar.write(ticket, this.#cookieMaxAge(session, now), cookies, secure);
      return {
        session,
        ref: { kind: 'server', handle },
        setCookie: [...lines, ...this.#legacyExpiry(cookies, secure)],
      };
    } catch (error) {
      throw storeUnavailable(error);
    }
  }

  /**
   * Replaces tokens and/or claims (e.g. after a refresh) and records use. Cookie sessions get
   * new `set-cookie` lines; server sessions are rewritten in place and need none.
   */
  async update(
    current: { readonly session: Session; readonly ref: SessionRef },
    changes: SessionChanges,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite> {
    const now = this.#now();
    const session: Session = {
      ...current.session,
      tokens: changes.tokens ?? plainTokens(current.session.tokens),
      ...(changes.claims === undefined ? {} : { claims: changes.claims }),
      lastSeenAt: now,
    };
    if (current.ref.kind === 'cookie' || this.#server === undefined) {
      return {
        session,
        ref: current.ref,
        setCookie: this.#writeCookie(session, cookies, secure, now),
      };
    }
    const { handle } = current.ref;
    await this.#writeServer(
      this.#server,
      cacheKeyFor(formatTicket(handle)),
      { handle, session },
      now,
    );
    return { session, ref: current.ref, setCookie: noLines };
  }

  async #endServer(
    server: ServerSessionStore,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<void> {
    const ticket = this.#jar.read(cookies, secure);
    if (ticket === undefined) return;
    // The store's copy, not a cached one: a logout acts on what the store holds now.
    try {
      const loaded = await server.load(ticket);
      if (loaded !== undefined) await server.delete(loaded.handle, loaded.session);
    } finally {
      this.#serverCache.invalidate(cacheKeyFor(ticket));
    }
  }

  /**
   * Ends the request's session: forgets its cached decode, deletes a server record, and returns
   * expiry lines for every session cookie the request carries.
   * @throws AuthzError `STORE_UNAVAILABLE` when a server record cannot be deleted.
   */
  async end(cookies: ReadonlyMap<string, string>, secure: boolean): Promise<string[]> {
    if (this.#server === undefined) {
      const value = this.#jar.read(cookies, secure);
      if (value !== undefined) this.#cache.delete(cacheKeyFor(value));
    } else {
      try {
        await this.#endServer(this.#server, cookies, secure);
      } catch (error) {
        throw storeUnavailable(error);
      }
    }
    return this.#clear(cookies, secure);
  }
  /**
   * Back-channel logout by IdP session: deletes every server session `sid` opened and returns
   * how many. Cookie sessions cannot be reached here (0); the revocation check refuses them.
   */
  async endBySid(sid: string): Promise<number> {
    if (this.#server === undefined) return 0;
    try {
      return await this.#server.endBySid(sid);
    } catch (error) {
      throw storeUnavailable(error);
    } finally {
      this.#serverCache.invalidateAll();
    }
  }

  /** Back-channel logout by subject: as {@link SessionManager.endBySid}, for every session of `sub`. */
  async endBySub(sub: string): Promise<number> {
    if (this.#server === undefined) return 0;
    try {
      return await this.#server.endBySub(sub);
    } catch (error) {
      throw storeUnavailable(error);
    } finally {
      this.#serverCache.invalidateAll();
    }
  }
}
