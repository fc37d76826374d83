/** Login-state cookies: one encrypted cookie per pending login flow, redeemed once at the callback. */
import { hash, timingSafeEqual } from 'node:crypto';
import { RandomPool } from './compact-jwe.ts';
import type { Keyspace } from '../store/keyspace.ts';
import type { Mark } from '../store/keyspaces.ts';
import { sha256Base64url } from '../digest.ts';
import { hasExpired } from '../expiry.ts';
import { isRecord } from '../is-record.ts';
import type { Clock } from '../clock.ts';
import type { SessionConfig } from '../config/schema.ts';
import type { CookieCodec } from './cookie-codec.ts';
import {
  cookieAttributes,
  expireCookie,
  prefixedName,
  type CookieScope,
  type SameSite,
} from './cookie-jar.ts';

/** What a login flow must remember between the redirect to the IdP and the callback. */
export interface LoginState {
  readonly state: string;
  readonly nonce: string;
  /** PKCE verifier (RFC 7636). */
  readonly codeVerifier: string;
  /** Where to send the browser after login; same-origin, checked by the caller. */
  readonly returnTo: string;
  /** ms since the epoch. */
  readonly createdAt: number;
}

/**
 * The app's session settings a login flow reads (its cookie is `<cookieName>_login_<flowId>`;
 * starting a flow beyond `maxPendingLogins` expires the oldest), and its clock (default `Date.now`).
 */
export type LoginStatesOptions = Pick<
  SessionConfig,
  'cookieName' | 'sameSite' | 'domain' | 'loginTimeout' | 'maxPendingLogins'
> & { readonly now?: Clock };

/** The outcome of redeeming a callback's `state`. */
export type LoginStateResult =
  | { readonly kind: 'ok'; readonly login: LoginState; readonly setCookie: readonly string[] }
  | {
      /**
       * `missing`: no pending flow has this state (wrong or forged state, other browser);
       * `expired`: it timed out; `replayed`: it was already redeemed (on any replica).
       */
      readonly kind: 'missing' | 'expired' | 'replayed';
      readonly setCookie: readonly string[];
    };

interface PresentFlow {
  readonly name: string;
  readonly login: LoginState | undefined;
}

function parseLoginState(data: unknown): LoginState | undefined {
  if (!isRecord(data)) return undefined;
  const { state, nonce, codeVerifier, returnTo, createdAt } = data;
  if (
    typeof state !== 'string' ||
    typeof nonce !== 'string' ||
    typeof codeVerifier !== 'string' ||
    typeof returnTo !== 'string' ||
    typeof createdAt !== 'number'
  ) {
    return undefined;
  }
  return { state, nonce, codeVerifier, returnTo, createdAt };
}

/** Whether two `state` values are equal, in time that depends on neither (both are hashed first). */
export function statesEqual(a: string, b: string): boolean {
  return timingSafeEqual(hash('sha256', a, 'buffer'), hash('sha256', b, 'buffer'));
}

/**
 * Pending login flows of one app, each in its own cookie so several tabs can log in at once.
 * The codec must be built from the `login-state` key purpose.
 */
export class LoginStates {
  readonly #codec: CookieCodec;
  readonly #replayMarks: Keyspace<string, Mark> | undefined;
  readonly #name: string;
  /** `#name` with the `__Host-` prefix, built once: `cookieNames` runs on every session load. */
  readonly #hostName: string;
  readonly #scope: CookieScope;
  readonly #loginTimeout: number;
  readonly #maxPending: number;
  readonly #now: Clock;
  readonly #random = new RandomPool();
  /** Cookie name prefix and `set-cookie` attributes of a new flow, by `secure`: built once. */
  readonly #newFlow: Readonly<Record<'true' | 'false', { prefix: string; attributes: string }>>;

  /**
   * @param replayMarks - where redeemed states are marked so each is used once across
   *   replicas; without it, one-time use holds only as far as the browser's cookie is expired.
   */
  constructor(
    codec: CookieCodec,
    options: LoginStatesOptions,
    replayMarks?: Keyspace<string, Mark>,
  ) {
    if (!Number.isInteger(options.maxPendingLogins) || options.maxPendingLogins < 1) {
      throw new RangeError('maxPendingLogins must be a positive integer');
    }
    this.#codec = codec;
    this.#replayMarks = replayMarks;
    this.#name = `${options.cookieName}_login_`;
    this.#hostName = `__Host-${this.#name}`;
    // Lax unless the app's is `none`: the IdP's redirect back is a cross-site top-level
    // navigation, which a `Strict` cookie would miss.
    const sameSite: SameSite = options.sameSite === 'none' ? 'none' : 'lax';
    this.#scope =
      options.domain === undefined ? { sameSite } : { sameSite, domain: options.domain };
    this.#loginTimeout = options.loginTimeout;
    this.#maxPending = options.maxPendingLogins;
    this.#now = options.now ?? Date.now;
    const newFlow = (secure: boolean) => ({
      prefix: prefixedName(this.#name, secure, this.#scope),
      attributes: cookieAttributes(this.#loginTimeout / 1000, secure, this.#scope),
    });
    this.#newFlow = { true: newFlow(true), false: newFlow(false) };
  }

  /**
   * `n` fresh random bytes from a pooled CSPRNG draw: a login needs about a hundred (flow id,
   * state, nonce, PKCE verifier), and one `randomBytes` call per login costs more than the rest
   * of generating them.
   */
  random(n: number): Buffer {
    return this.#random.take(n);
  }

  /** The request's login-state cookie names (either security mode), to strip upstream. */
  cookieNames(cookies: ReadonlyMap<string, string>): string[] {
    const names: string[] = [];
    for (const name of cookies.keys()) {
      if (name.startsWith(this.#name) || name.startsWith(this.#hostName)) names.push(name);
    }
    return names;
  }

  #present(cookies: ReadonlyMap<string, string>, secure: boolean): PresentFlow[] {
    const flows: PresentFlow[] = [];
    if (cookies.size === 0) return flows;
    const prefix = this.#newFlow[secure ? 'true' : 'false'].prefix;
    for (const [name, value] of cookies) {
      if (!name.startsWith(prefix)) continue;
      const login = parseLoginState(this.#codec.open(value));
      flows.push({ name, login });
    }
    return flows;
  }

  #isLive(login: LoginState, now: number): boolean {
    return !hasExpired(login.createdAt + this.#loginTimeout, now) && login.createdAt <= now;
  }

  /**
   * Starts a flow: the `set-cookie` line for it, plus expiry lines for flows that are
   * unreadable, timed out, or beyond `maxPendingLogins` counting the new one (oldest first).
   */
  start(
    login: Omit<LoginState, 'createdAt'>,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): string[] {
    const now = this.#now();
    const lines: string[] = [];
    const live: { name: string; createdAt: number }[] = [];
    for (const flow of this.#present(cookies, secure)) {
      if (flow.login !== undefined && this.#isLive(flow.login, now)) {
        live.push({ name: flow.name, createdAt: flow.login.createdAt });
      } else {
        lines.push(expireCookie(flow.name, secure, this.#scope));
      }
    }
    if (live.length >= this.#maxPending) {
      live.sort((a, b) => b.createdAt - a.createdAt);
      for (const stale of live.slice(this.#maxPending - 1)) {
        lines.push(expireCookie(stale.name, secure, this.#scope));
      }
    }
    const record: LoginState = {
      state: login.state,
      nonce: login.nonce,
      codeVerifier: login.codeVerifier,
      returnTo: login.returnTo,
      createdAt: now,
    };
    const { prefix, attributes } = this.#newFlow[secure ? 'true' : 'false'];
    const name = prefix + this.random(6).toString('base64url');
    lines.push(`${name}=${this.#codec.seal(record)}${attributes}`);
    return lines;
  }

  /**
   * Redeems the flow whose `state` equals `stateParam` (compared in constant time). On success
   * its cookie is expired and, with a replay store, the state is marked used on every replica.
   */
  async take(
    cookies: ReadonlyMap<string, string>,
    stateParam: string,
    secure: boolean,
  ): Promise<LoginStateResult> {
    const now = this.#now();
    const lines: string[] = [];
    let match: PresentFlow | undefined;
    for (const flow of this.#present(cookies, secure)) {
      if (flow.login === undefined) {
        lines.push(expireCookie(flow.name, secure, this.#scope));
      } else if (match === undefined && statesEqual(flow.login.state, stateParam)) {
        match = flow;
      } else if (!this.#isLive(flow.login, now)) {
        lines.push(expireCookie(flow.name, secure, this.#scope));
      }
    }
    if (match?.login === undefined) return { kind: 'missing', setCookie: lines };
    lines.push(expireCookie(match.name, secure, this.#scope));
    if (!this.#isLive(match.login, now)) return { kind: 'expired', setCookie: lines };
    if (this.#replayMarks !== undefined) {
      const first = await this.#replayMarks.setIfAbsent(sha256Base64url(match.login.state), {
        at: now,
      });
      if (!first) return { kind: 'replayed', setCookie: lines };
    }
    return { kind: 'ok', login: match.login, setCookie: lines };
  }
}
