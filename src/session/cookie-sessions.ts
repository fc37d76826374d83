/** Sessions sealed whole in the cookie (`session.store: cookie`), decoded once per cookie value. */
import type { Clock } from '../clock.ts';
import type { CallBound } from '../store/store-backend.ts';
import { sha256Base64url } from '../digest.ts';
import { hasExpired } from '../expiry.ts';
import { createCookieCodec, type CookieCodec } from './cookie-codec.ts';
import { ExpiringLru } from '../expiring-lru.ts';
import { StringPool, toCachedSession, type CachedSession } from './session-cache.ts';
import { noLines, SessionCookies } from './session-cookies.ts';
import type { LoginStates } from './login-state.ts';
import { deriveKeyRing } from './session-keys.ts';
import { SessionLifetime } from './session-lifetime.ts';
import {
  changeSession,
  parseSession,
  plainTokens,
  startSession,
  type NewSession,
  type Session,
  type SessionChanges,
  type SessionTokens,
} from './session.ts';
import type {
  SessionLoad,
  SessionLoadOptions,
  SessionOptions,
  SessionRef,
  Sessions,
  SessionsDeps,
  SessionWrite,
} from './sessions.ts';

/** What cookie sessions are built with besides their options. */
export interface CookieSessionsDeps extends SessionsDeps {
  /**
   * Decoded cookie sessions by `sha256Base64url` of the cookie value (the whole digest: a
   * `slice` would keep it alive as well); default a fresh cache of 100,000 entries.
   */
  readonly cache?: ExpiringLru<CachedSession>;
  /** Seals and opens the sessions; default one over `secrets` under `binding`. */
  readonly codec?: CookieCodec;
}

const cookieRef: SessionRef = Object.freeze({ kind: 'cookie' });
const noSessionsToEnd = (_sidOrSub: string): Promise<number> => Promise.resolve(0);

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

/**
 * Each session sealed in its own cookie, so the store holds nothing of it: a logout elsewhere
 * reaches it only through the revocation check. Hot sessions skip decryption through a cache
 * keyed by a digest of the cookie value.
 */
export class CookieSessions implements Sessions {
  readonly loginStates: LoginStates;
  readonly #cookies: SessionCookies;
  readonly #lifetime: SessionLifetime;
  readonly #now: Clock;
  readonly #codec: CookieCodec;
  readonly #cache: ExpiringLru<CachedSession>;
  /** Claim strings shared by this app's cached sessions. */
  readonly #claimStrings = new StringPool();

  constructor(options: SessionOptions, deps: CookieSessionsDeps = {}) {
    this.#now = deps.now ?? Date.now;
    this.#cookies = new SessionCookies(options, this.#now, deps.loginReplayMarks);
    this.loginStates = this.#cookies.loginStates;
    this.#lifetime = new SessionLifetime(options.maxAge, options.idleTimeout, deps.isRevoked);
    this.#codec =
      deps.codec ?? createCookieCodec(deriveKeyRing(options.secrets, 'session', options.binding));
    this.#cache = deps.cache ?? new ExpiringLru({ maxEntries: 100_000, now: this.#now });
  }

  cookieNames(cookies: ReadonlyMap<string, string>): string[] {
    return this.#cookies.names(cookies);
  }

  /**
   * Synchronous for a decodable cookie whose session is trusted as not revoked (the common
   * case: no promise, no turn of the microtask queue); a promise when the store is asked.
   */
  load(
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    options: SessionLoadOptions = {},
  ): SessionLoad | Promise<SessionLoad> {
    const presented = this.#cookies.present(cookies, secure);
    if (presented.kind !== 'presented') return presented;
    const loaded = this.#load(
      presented.value,
      cookies,
      secure,
      presented.names,
      this.#now(),
      options.cacheIdToken === true,
      options.bound,
    );
    return loaded instanceof Promise
      ? loaded.then((settled) => this.#cookies.expireLegacy(settled, presented, secure))
      : this.#cookies.expireLegacy(loaded, presented, secure);
  }

  /** The session sealed in a cookie value; `undefined` when it does not open or parse. */
  #open(value: string): Session | undefined {
    return parseSession(this.#codec.open(value));
  }

  #load(
    value: string,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    names: readonly string[],
    now: number,
    cacheIdToken: boolean,
    bound: CallBound | undefined,
  ): SessionLoad | Promise<SessionLoad> {
    const key = sha256Base64url(value);
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
        return this.#cookies.reject('invalid', 'undecodable', cookies, secure, names);
      }
      cached = toCachedSession(opened, cacheIdToken, this.#claimStrings);
      this.#cache.set(key, cached, this.#lifetime.deadline(opened));
    }
    const rejection = this.#lifetime.rejection(cached, now);
    if (rejection !== undefined) {
      this.#cache.delete(key);
      return this.#cookies.reject('expired', rejection, cookies, secure, names);
    }
    const session = cached;
    // The rest, once the revocation check answered: at once for a trusted session.
    const decided = (revoked: boolean): SessionLoad => {
      if (revoked) {
        this.#cache.delete(key);
        return this.#cookies.reject('expired', 'revoked', cookies, secure, names);
      }
      if (!hasExpired(session.lastSeenAt + this.#lifetime.touchInterval, now)) {
        return {
          kind: 'valid',
          session: opened ?? this.#sessionFrom(session, value),
          identity: session,
          ref: cookieRef,
          cookieNames: names,
          setCookie: noLines,
        };
      }
      // Re-issuing the cookie needs every token, so a cached session is opened again.
      const whole = opened ?? this.#open(value);
      if (whole === undefined) {
        return this.#cookies.reject('invalid', 'undecodable', cookies, secure, names);
      }
      const touched: Session = { ...whole, lastSeenAt: now };
      return {
        kind: 'valid',
        session: touched,
        identity: touched,
        ref: cookieRef,
        cookieNames: names,
        setCookie: this.#write(touched, cookies, secure, now, cacheIdToken),
      };
    };
    const revoked = this.#lifetime.revoked(session, bound);
    return typeof revoked === 'boolean' ? decided(revoked) : revoked.then(decided);
  }

  /** A cached session as a whole `Session`, its left-out tokens read back from `value`. */
  #sessionFrom(cached: CachedSession, value: string): Session {
    const tokens = new CookieBackedTokens(cached, value, this.#codec);
    const { id, sub, sid, claims, createdAt, lastSeenAt } = cached;
    return sid === undefined
      ? { v: 1, id, sub, claims, tokens, createdAt, lastSeenAt }
      : { v: 1, id, sub, sid, claims, tokens, createdAt, lastSeenAt };
  }

  /**
   * Seals a session, primes the cache with the new value (with the ID token when
   * `keepIdToken`), and returns its lines (with expiry lines for legacy cookies). The cookie
   * lives as long as the session would be accepted.
   * @throws SessionTooLargeError when the sealed session needs more chunks than allowed.
   */
  #write(
    session: Session,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    now: number,
    keepIdToken = false,
  ): string[] {
    const value = this.#codec.seal(session);
    const deadline = this.#lifetime.deadline(session);
    const maxAge = Math.floor((deadline - now) / 1000);
    const lines = this.#cookies.write(value, maxAge, cookies, secure);
    const cached = toCachedSession(session, keepIdToken, this.#claimStrings);
    this.#cache.set(sha256Base64url(value), cached, deadline);
    return lines;
  }

  create(
    data: NewSession,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite> {
    const now = this.#now();
    const session = startSession(data, now);
    const previous = this.#cookies.read(cookies, secure);
    if (previous !== undefined) this.#cache.delete(sha256Base64url(previous));
    return this.#written(session, cookieRef, cookies, secure, now);
  }

  update(
    current: { readonly session: Session; readonly ref: SessionRef },
    changes: SessionChanges,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite> {
    const now = this.#now();
    const session = changeSession(current.session, changes, now);
    return this.#written(session, current.ref, cookies, secure, now);
  }

  /** `session` sealed into new cookie lines; a rejected promise when it does not fit. */
  #written(
    session: Session,
    ref: SessionRef,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    now: number,
  ): Promise<SessionWrite> {
    // A throw in the executor rejects the promise, as it would in an async method.
    return new Promise((resolve) => {
      resolve({ session, ref, setCookie: this.#write(session, cookies, secure, now) });
    });
  }

  end(cookies: ReadonlyMap<string, string>, secure: boolean): Promise<string[]> {
    const value = this.#cookies.read(cookies, secure);
    if (value !== undefined) this.#cache.delete(sha256Base64url(value));
    return Promise.resolve(this.#cookies.clear(cookies, secure));
  }

  /** Cookie sessions are not in the store: none to delete; the revocation check refuses them. */
  readonly endBySid = noSessionsToEnd;
  readonly endBySub = noSessionsToEnd;
}
