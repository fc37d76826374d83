/** Login-state cookies: one encrypted cookie per pending login flow, redeemed once at the callback. */
import { hash, timingSafeEqual } from 'node:crypto';
import { RandomPool, openDerived, sealDerived } from './compact-jwe.ts';
import type { Keyspace } from '../store/keyspace.ts';
import type { LoginMark } from '../store/keyspaces.ts';
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
> & {
  readonly now?: Clock;
  /**
   * How far the clocks of the replicas may disagree, ms (`oidc.clockSkew`; default 0): a flow
   * started on another replica stays live this much longer, and may seem this much in the future.
   */
  readonly clockSkew?: number | undefined;
};

/** How long a callback holds a state while it exchanges the code (see {@link LoginStates.take}). */
export const LOGIN_CLAIM_TTL_MS = 30_000;

/**
 * How long after a login completed the browser that made it may retry its callback and get the
 * same answer (the first never reached it): long enough for a reload, no longer.
 */
export const LOGIN_ANSWER_TTL_MS = 60_000;

/** A flow a callback holds: settle it with `complete`, `release` or `abandon`. */
export interface ClaimedLogin {
  readonly kind: 'ok';
  readonly login: LoginState;
  /** Expiry lines for this flow's cookie and for dead flows. */
  readonly setCookie: readonly string[];
  /** The claim in the replay store; `undefined` without one. */
  readonly claim: LoginMark | undefined;
}

/** What a completed callback answered: where the browser went, with which cookies. */
export interface LoginAnswer {
  readonly location: string;
  readonly setCookie: readonly string[];
}

/** The outcome of redeeming a callback's `state`. */
export type LoginStateResult =
  | ClaimedLogin
  | {
      /**
       * The login already completed, and this request is the browser that made it, retrying
       * the same callback (its answer never arrived, e.g. the Check ran out of budget): the
       * same answer again.
       */
      readonly kind: 'completed';
      readonly answer: LoginAnswer;
      readonly setCookie: readonly string[];
    }
  | {
      /**
       * `missing`: no pending flow has this state (wrong or forged state, other browser);
       * `expired`: it timed out; `future`: it was made on a replica whose clock is ahead of
       * ours by more than the tolerated skew; `replayed`: it already completed a login (on any
       * replica); `unfinished`: its code was exchanged but no session was made;
       * `in_progress`: another callback is exchanging its code right now (its cookie is kept).
       */
      readonly kind: 'missing' | 'expired' | 'future' | 'replayed' | 'unfinished' | 'in_progress';
      readonly setCookie: readonly string[];
      /** For `expired` and `future`: when the flow started by its own replica's clock. */
      readonly createdAt?: number;
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
  readonly #replayMarks: Keyspace<string, LoginMark> | undefined;
  readonly #name: string;
  /** `#name` with the `__Host-` prefix, built once: `cookieNames` runs on every session load. */
  readonly #hostName: string;
  readonly #scope: CookieScope;
  readonly #loginTimeout: number;
  readonly #clockSkew: number;
  /**
   * How long a used or unfinished mark lives: past the last moment any replica could still
   * take the flow as live (`loginTimeout` plus the skew of the replica that started it and of
   * the one judging it), with the keyspace's margin of twice that.
   */
  readonly #markTtl: number;
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
    replayMarks?: Keyspace<string, LoginMark>,
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
    this.#clockSkew = options.clockSkew ?? 0;
    this.#markTtl = 2 * (this.#loginTimeout + this.#clockSkew);
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

  /**
   * Whether a flow is `live`, timed out (`expired`), or made in the future (`future`) at `now`.
   * Another replica may have started it: its `createdAt` is that replica's clock, which may
   * differ from ours by up to `clockSkew` either way.
   */
  #age(login: LoginState, now: number): 'live' | 'expired' | 'future' {
    if (login.createdAt > now + this.#clockSkew) return 'future';
    return hasExpired(login.createdAt + this.#loginTimeout + this.#clockSkew, now)
      ? 'expired'
      : 'live';
  }

  #isLive(login: LoginState, now: number): boolean {
    return this.#age(login, now) === 'live';
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
   * Redeems the flow whose `state` equals `stateParam` (compared in constant time) for one
   * callback, which then settles it: {@link complete} once a session is made, {@link release}
   * when the code exchange did not go through, {@link abandon} when it did but no session was
   * made.
   *
   * With a replay store the state is claimed on every replica before the code is exchanged, so
   * that a transient failure does not burn it and a success is never accepted twice:
   * - the claim is `SET NX` of an `exchanging` mark with this callback's owner token that lives
   *   {@link LOGIN_CLAIM_TTL_MS} (longer than a token call plus a key fetch), so of concurrent
   *   callbacks with one state only one exchanges; the others get `in_progress` and keep the
   *   cookie;
   * - `release` deletes the claim only while it is still this callback's (`deleteIfEquals`), so
   *   the browser's retry of the same callback URL may try again: the provider either accepts the
   *   code (the exchange never reached it) or refuses a spent one (`invalid_grant`: a clean
   *   "start again");
   * - `complete` replaces the claim with the used mark, kept well beyond the cookie's life, and
   *   `abandon` with an `unfinished` one: either way the state is never exchanged again;
   * - a callback that dies holding the claim leaves it to expire, after which the provider
   *   decides, as for a release.
   * While the store is down the marks live in this replica's memory (the degradable store), and
   * one-time use rests on the browser's cookie and the provider's one-time code.
   * Without a replay store only the expired cookie guards reuse.
   */
  async take(
    cookies: ReadonlyMap<string, string>,
    stateParam: string,
    secure: boolean,
    code?: string,
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
    const login = match.login;
    const expireMatch = expireCookie(match.name, secure, this.#scope);
    const age = this.#age(login, now);
    if (age !== 'live') {
      return { kind: age, setCookie: [...lines, expireMatch], createdAt: login.createdAt };
    }
    if (this.#replayMarks === undefined) {
      return { kind: 'ok', login, setCookie: [...lines, expireMatch], claim: undefined };
    }
    const claim: LoginMark = {
      at: now,
      phase: 'exchanging',
      owner: this.random(12).toString('base64url'),
    };
    const key = sha256Base64url(login.state);
    // Twice at most: a claim released between `setIfAbsent` and `get` lets this one try again.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (await this.#replayMarks.setIfAbsent(key, claim, LOGIN_CLAIM_TTL_MS)) {
        return { kind: 'ok', login, setCookie: [...lines, expireMatch], claim };
      }
      const held = await this.#replayMarks.get(key);
      if (held === undefined) continue;
      if (held.phase === 'exchanging') return { kind: 'in_progress', setCookie: lines };
      const answer =
        held.answer === undefined ||
        code === undefined ||
        hasExpired(held.at + LOGIN_ANSWER_TTL_MS + this.#clockSkew, now)
          ? undefined
          : openAnswer(held.answer, login, code);
      if (answer !== undefined) return { kind: 'completed', answer, setCookie: lines };
      const kind = held.phase === 'unfinished' ? 'unfinished' : 'replayed';
      return { kind, setCookie: [...lines, expireMatch] };
    }
    return { kind: 'in_progress', setCookie: lines };
  }

  /**
   * The login completed (a session was made): its state is used for good, on every replica.
   * With `answered`, the answer is kept in the mark, sealed with a key derived from the flow's
   * PKCE verifier (in the browser's login-state cookie) and the `code` (in the callback URL), so
   * that only that browser retrying that callback opens it ({@link take} gives `completed`).
   */
  async complete(
    taken: ClaimedLogin,
    answered?: { readonly code: string; readonly answer: LoginAnswer },
  ): Promise<void> {
    if (taken.claim === undefined || this.#replayMarks === undefined) return;
    const at = this.#now();
    await this.#replayMarks.set(
      sha256Base64url(taken.login.state),
      answered === undefined
        ? { at }
        : { at, answer: sealAnswer(answered.answer, taken.login, answered.code) },
      this.#markTtl,
    );
  }

  /**
   * The code exchange did not go through (the provider unreachable, the code refused): the
   * state may be redeemed again by the browser's retry, on any replica.
   */
  async release(taken: ClaimedLogin): Promise<void> {
    if (taken.claim === undefined || this.#replayMarks === undefined) return;
    await this.#replayMarks.deleteIfEquals(sha256Base64url(taken.login.state), taken.claim);
  }

  /** The code was exchanged but no session was made: the state can never complete a login. */
  async abandon(taken: ClaimedLogin): Promise<void> {
    if (taken.claim === undefined || this.#replayMarks === undefined) return;
    await this.#replayMarks.set(
      sha256Base64url(taken.login.state),
      { at: this.#now(), phase: 'unfinished' },
      this.#markTtl,
    );
  }
}

/** HKDF info of the key that seals a login's answer (the code is the salt). */
const answerKeyInfo = 'eoa login answer v1';

function sealAnswer(answer: LoginAnswer, login: LoginState, code: string): string {
  return sealDerived(login.codeVerifier, code, answerKeyInfo, answer);
}

function openAnswer(sealed: string, login: LoginState, code: string): LoginAnswer | undefined {
  const data = openDerived(login.codeVerifier, code, answerKeyInfo, sealed);
  if (!isRecord(data)) return undefined;
  const { location, setCookie } = data;
  if (typeof location !== 'string' || !Array.isArray(setCookie)) return undefined;
  if (!setCookie.every((line): line is string => typeof line === 'string')) return undefined;
  return { location, setCookie };
}
