/** An app's session cookie, its login-state cookies and the legacy ones: what both session stores read and write. */
import type { Keyspace } from '../store/keyspace.ts';
import type { LoginMark } from '../store/keyspaces.ts';
import type { Clock } from '../clock.ts';
import { SessionTooLargeError } from '../errors.ts';
import { createCookieCodec } from './cookie-codec.ts';
import { ChunkedCookie, expireCookie, type CookieScope } from './cookie-jar.ts';
import { LoginStates } from './login-state.ts';
import { deriveKeyRing } from './session-keys.ts';
import type { SessionLoad, SessionOptions, SessionRejection } from './sessions.ts';

/** A login flow's id in its cookie name: 6 random bytes, base64url. */
const LOGIN_FLOW_ID = /^[A-Za-z0-9_-]{8}$/;

export const noLines: readonly string[] = Object.freeze([]);

/** A session cookie the request presents, for the store to open. */
export interface PresentedSession {
  readonly kind: 'presented';
  /** The session cookie's (reassembled) value: a sealed session or a ticket. */
  readonly value: string;
  /** Session and login-state cookie names in the request, legacy ones included. */
  readonly names: readonly string[];
  /** The legacy cookie names among them; usually none. */
  readonly legacy: readonly string[];
}

/**
 * The cookies of one app's sessions: the session cookie (whole or in chunks), the pending login
 * flows, and the cookies under the app's legacy name, which are expired wherever they are seen.
 */
export class SessionCookies {
  readonly loginStates: LoginStates;
  readonly #jar: ChunkedCookie;
  /** The legacy cookie name's session cookie, expired on sight; `undefined` when none. */
  readonly #legacy: ChunkedCookie | undefined;
  /** The legacy name's login-state prefix: its flows are `<prefix><8 characters>`. */
  readonly #legacyLogin: string | undefined;
  readonly #scope: CookieScope;

  /**
   * @param now - the login flows' clock.
   * @param loginReplayMarks - where redeemed login states are marked on every replica.
   */
  constructor(
    options: SessionOptions,
    now: Clock,
    loginReplayMarks: Keyspace<string, LoginMark> | undefined,
  ) {
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
    this.loginStates = new LoginStates(
      createCookieCodec(deriveKeyRing(options.secrets, 'login-state', options.binding)),
      { ...options, now },
      loginReplayMarks,
    );
  }

  /** Every session and login-state cookie name the request carries, legacy ones included. */
  names(cookies: ReadonlyMap<string, string>): string[] {
    const names = [...this.#jar.presentNames(cookies), ...this.loginStates.cookieNames(cookies)];
    return this.#legacy === undefined ? names : [...names, ...this.#legacyNames(cookies, names)];
  }

  /**
   * The session cookie the request presents; or, when there is none to open, the whole load:
   * `none`, only legacy cookies (expired), or a session cookie missing its first part.
   */
  present(cookies: ReadonlyMap<string, string>, secure: boolean): PresentedSession | SessionLoad {
    // The request's cookies are scanned once for our names; the legacy ones are usually none.
    const session = this.#jar.presentNames(cookies);
    const own = [...session, ...this.loginStates.cookieNames(cookies)];
    const legacy = this.#legacy === undefined ? noLines : this.#legacyNames(cookies, own);
    const names = legacy.length === 0 ? own : [...own, ...legacy];
    const value = this.#jar.read(cookies, secure);
    if (value !== undefined) return { kind: 'presented', value, names, legacy };
    if (session.length === 0) {
      if (legacy.length === 0) return { kind: 'none' };
      const setCookie = this.#expire(legacy, secure);
      return { kind: 'invalid', reason: 'legacy', cookieNames: names, setCookie };
    }
    return this.reject('invalid', 'undecodable', cookies, secure, names);
  }

  /** `loaded` with the presented legacy cookies expired, unless its lines already do so. */
  expireLegacy(loaded: SessionLoad, presented: PresentedSession, secure: boolean): SessionLoad {
    if (presented.legacy.length === 0 || loaded.kind !== 'valid') return loaded;
    // Lines that re-issue the session already expire the legacy cookies (see `write`).
    return loaded.setCookie.length === 0
      ? { ...loaded, setCookie: this.#expire(presented.legacy, secure) }
      : loaded;
  }

  /** A refused session: expiry lines for every session cookie of the request. */
  reject(
    kind: 'expired' | 'invalid',
    reason: SessionRejection,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    names: readonly string[],
  ): SessionLoad {
    return { kind, reason, cookieNames: names, setCookie: this.clear(cookies, secure) };
  }

  /** The session cookie's value in the request; `undefined` when absent or incomplete. */
  read(cookies: ReadonlyMap<string, string>, secure: boolean): string | undefined {
    return this.#jar.read(cookies, secure);
  }

  /**
   * Lines storing `value` for `maxAgeSeconds`, expiring the old value's stale parts and the
   * request's legacy cookies.
   * @throws SessionTooLargeError when the value needs more chunks than allowed.
   */
  write(
    value: string,
    maxAgeSeconds: number,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): string[] {
    let lines: string[];
    try {
      lines = this.#jar.write(value, maxAgeSeconds, cookies, secure);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new SessionTooLargeError(value.length, this.#jar.capacity(maxAgeSeconds, secure));
    }
    const legacy = this.#legacyExpiry(cookies, secure);
    return legacy.length === 0 ? lines : [...lines, ...legacy];
  }

  /** Expiry lines for every session cookie of the request, legacy ones included. */
  clear(cookies: ReadonlyMap<string, string>, secure: boolean): string[] {
    const lines = this.#jar.clear(cookies, secure);
    const legacy = this.#legacyExpiry(cookies, secure);
    return legacy.length === 0 ? lines : [...lines, ...legacy];
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
    return this.#expire(this.#legacyNames(cookies, own), secure);
  }

  /** Expiry lines for `names`, under this app's cookie scope. */
  #expire(names: readonly string[], secure: boolean): readonly string[] {
    return names.length === 0
      ? noLines
      : names.map((name) => expireCookie(name, secure, this.#scope));
  }
}
