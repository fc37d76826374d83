/** Sessions kept in the store (`session.store: server`): the cookie holds only a ticket to the record. */
import { sha256Base64url } from '../digest.ts';
import { hasExpired } from '../expiry.ts';
import { StoreUnavailableError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { LoginStates } from './login-state.ts';
import { ServerSessionCache } from './server-session-cache.ts';
import {
  formatTicket,
  ServerSessionStore,
  type LoadedServerSession,
  type ServerSessionKeyspaces,
} from './server-session-store.ts';
import { noLines, SessionCookies } from './session-cookies.ts';
import { bindingLabel } from './session-keys.ts';
import { SessionLifetime } from './session-lifetime.ts';
import {
  changeSession,
  startSession,
  type NewSession,
  type Session,
  type SessionChanges,
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

/** What server sessions are built with besides their options. */
export interface ServerSessionsDeps extends SessionsDeps {
  /** Where the records and their `sid`/`sub` indexes live. */
  readonly serverSessions: ServerSessionKeyspaces;
}

/** What `operation` resolves to; whatever it throws becomes `STORE_UNAVAILABLE`. */
async function fromStore<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (cause) {
    throw cause instanceof StoreUnavailableError
      ? cause
      : new StoreUnavailableError('failure', { cause });
  }
}

/**
 * Each session a record in the store, sealed with a key only its cookie's ticket holds, so a
 * logout or a back-channel logout deletes it for every replica. Every store failure is
 * `STORE_UNAVAILABLE` (503), never a silent logout (SPEC §11).
 */
export class ServerSessions implements Sessions {
  readonly loginStates: LoginStates;
  readonly #cookies: SessionCookies;
  readonly #lifetime: SessionLifetime;
  readonly #now: Clock;
  readonly #store: ServerSessionStore;
  /** Server sessions read moments ago (at most 10,000). */
  readonly #cache: ServerSessionCache;

  constructor(options: SessionOptions, deps: ServerSessionsDeps) {
    this.#now = deps.now ?? Date.now;
    this.#cookies = new SessionCookies(options, this.#now, deps.loginReplayMarks);
    this.loginStates = this.#cookies.loginStates;
    this.#lifetime = new SessionLifetime(options.maxAge, options.idleTimeout, deps.isRevoked);
    this.#store = new ServerSessionStore(deps.serverSessions, bindingLabel(options.binding));
    this.#cache = new ServerSessionCache(10_000, this.#now);
  }

  cookieNames(cookies: ReadonlyMap<string, string>): string[] {
    return this.#cookies.names(cookies);
  }

  async load(
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    options: SessionLoadOptions = {},
  ): Promise<SessionLoad> {
    const presented = this.#cookies.present(cookies, secure);
    if (presented.kind !== 'presented') return presented;
    const loaded = await this.#load(
      presented.value,
      cookies,
      secure,
      presented.names,
      options.bound,
    );
    return this.#cookies.expireLegacy(loaded, presented, secure);
  }

  async #load(
    ticket: string,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
    names: readonly string[],
    bound: CallBound | undefined,
  ): Promise<SessionLoad> {
    const now = this.#now();
    const cache = this.#cache;
    const key = sha256Base64url(ticket);
    let loaded = cache.get(key);
    // A touch writes the record back, so it starts from a fresh read: a session deleted on
    // another replica within the cache window is not brought back to life.
    if (
      loaded === undefined ||
      hasExpired(loaded.session.lastSeenAt + this.#lifetime.touchInterval, now)
    ) {
      const stamp = cache.stamp();
      loaded = await fromStore(() => this.#store.load(ticket, bound));
      if (loaded === undefined) {
        cache.delete(key);
        return this.#cookies.reject('invalid', 'unknown', cookies, secure, names);
      }
      cache.set(key, loaded, stamp);
    }
    const { handle, session } = loaded;
    const rejection = this.#lifetime.rejection(session, now);
    const asked = rejection === undefined && this.#lifetime.revoked(session, bound);
    const revoked = asked === true || (asked !== false && (await asked));
    if (rejection !== undefined || revoked) {
      await this.#store.delete(handle, session).catch(() => undefined); // its TTL ends it anyway
      cache.invalidate(key);
      return this.#cookies.reject('expired', rejection ?? 'revoked', cookies, secure, names);
    }
    let current = session;
    if (hasExpired(session.lastSeenAt + this.#lifetime.touchInterval, now)) {
      current = { ...session, lastSeenAt: now };
      await this.#write(key, { handle, session: current }, now);
    }
    const ref: SessionRef = { kind: 'server', handle };
    return {
      kind: 'valid',
      session: current,
      identity: current,
      ref,
      cookieNames: names,
      setCookie: noLines,
    };
  }

  /** Store TTL, ms: until the session's deadline. */
  #recordTtl(session: Session, now: number): number {
    return Math.max(1, this.#lifetime.deadline(session) - now);
  }

  /**
   * Writes a session's record and puts it in this replica's cache under `key` (the ticket's
   * digest); on failure the entry is dropped, as the record may or may not have changed.
   * @throws AuthzError `STORE_UNAVAILABLE`.
   */
  async #write(key: string, loaded: LoadedServerSession, now: number): Promise<void> {
    const ttl = this.#recordTtl(loaded.session, now);
    try {
      await fromStore(() => this.#store.update(loaded.handle, loaded.session, ttl));
    } catch (error) {
      this.#cache.invalidate(key);
      throw error;
    }
    this.#cache.replace(key, loaded);
  }

  async create(
    data: NewSession,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): Promise<SessionWrite> {
    const now = this.#now();
    const session = startSession(data, now);
    await this.#end(cookies, secure).catch(() => undefined);
    const { handle, ticket } = await fromStore(() =>
      this.#store.create(session, this.#recordTtl(session, now)),
    );
    // The browser's next request, right after the login redirect, needs no store read.
    this.#cache.replace(sha256Base64url(ticket), { handle, session });
    // The cookie outlives an idle deadline: each use moves that deadline, not the cookie's.
    const maxAge = Math.floor((this.#lifetime.maxAgeEnd(session) - now) / 1000);
    const setCookie = this.#cookies.write(ticket, maxAge, cookies, secure);
    return { session, ref: { kind: 'server', handle }, setCookie };
  }

  /**
   * Rewrites the record in place: the ticket, so the cookie, stays as it is.
   * @throws TypeError for a session these sessions did not load (a cookie session's ref).
   */
  async update(
    current: { readonly session: Session; readonly ref: SessionRef },
    changes: SessionChanges,
    _cookies?: ReadonlyMap<string, string>,
    _secure?: boolean,
  ): Promise<SessionWrite> {
    const { ref } = current;
    if (ref.kind !== 'server') throw new TypeError('not a server session');
    const now = this.#now();
    const session = changeSession(current.session, changes, now);
    const { handle } = ref;
    await this.#write(sha256Base64url(formatTicket(handle)), { handle, session }, now);
    return { session, ref, setCookie: noLines };
  }

  /** Deletes the record the request's ticket names, as the store holds it now. */
  async #end(cookies: ReadonlyMap<string, string>, secure: boolean): Promise<void> {
    const ticket = this.#cookies.read(cookies, secure);
    if (ticket === undefined) return;
    // The store's copy, not a cached one: a logout acts on what the store holds now.
    try {
      const loaded = await this.#store.load(ticket);
      if (loaded !== undefined) await this.#store.delete(loaded.handle, loaded.session);
    } finally {
      this.#cache.invalidate(sha256Base64url(ticket));
    }
  }

  async end(cookies: ReadonlyMap<string, string>, secure: boolean): Promise<string[]> {
    await fromStore(() => this.#end(cookies, secure));
    return this.#cookies.clear(cookies, secure);
  }

  endBySid(sid: string): Promise<number> {
    return this.#endAll(() => this.#store.endBySid(sid));
  }

  endBySub(sub: string): Promise<number> {
    return this.#endAll(() => this.#store.endBySub(sub));
  }

  /** Runs a back-channel deletion; only ids are known, so every cached session is forgotten. */
  async #endAll(deletion: () => Promise<number>): Promise<number> {
    try {
      return await fromStore(deletion);
    } finally {
      this.#cache.invalidateAll();
    }
  }
}
