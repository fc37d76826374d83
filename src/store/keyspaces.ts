/** The record kinds the server keeps in its store, each as its own typed keyspace. */
import { jsonCodec, Keyspace, SetKeyspace, stringCodec } from './keyspace.ts';
import type { Clock } from '../clock.ts';
import type { StoreBackend } from './store-backend.ts';
import { isRecord } from '../is-record.ts';

/** The characters `encodeURIComponent` leaves as they are. */
const unescaped = /^[A-Za-z0-9\-_.!~*'()]*$/;

/** Escapes one caller-supplied key part so that parts can never run into each other. */
function part(value: string): string {
  // Most parts (session ids, digests, `sub`s) need no escaping: testing is cheaper than the copy
  // `encodeURIComponent` makes, and a session load builds three keys.
  return unescaped.test(value) ? value : encodeURIComponent(value);
}

/** A dated mark: a login `state` used once, or a logout that ended sessions. */
export interface Mark {
  /** When it was made, ms since the epoch. */
  readonly at: number;
}

const markCodec = jsonCodec<Mark>(1, (data) =>
  isRecord(data) && typeof data['at'] === 'number' ? { at: data['at'] } : undefined,
);

/** A revoked access-token id, kept until the token would have expired anyway. */
export interface RevokedToken {
  /** The token's `exp`, ms since the epoch. */
  readonly exp: number;
}

/**
 * A login `state`'s one-time-use record (see `LoginStates.take`). Without `phase` the login
 * completed: the only kind older releases write, so they and this one agree on what is used.
 */
export interface LoginMark {
  /** When it was made, ms since the epoch. */
  readonly at: number;
  /**
   * `exchanging`: a callback holds the state while it exchanges the code (`owner` tells whose
   * claim it is, so that only its holder releases it); `unfinished`: the code was exchanged but
   * no session could be made, so the state can never complete a login.
   */
  readonly phase?: 'exchanging' | 'unfinished';
  readonly owner?: string;
  /**
   * On a completed login: the answer its callback gave (where to, which cookies), sealed with a
   * key only the browser that made the flow can derive (its PKCE verifier and the code), so a
   * retry of a callback whose answer never reached the browser gets the same answer.
   */
  readonly answer?: string;
}

const loginMarkCodec = jsonCodec<LoginMark>(1, (data) => {
  if (!isRecord(data) || typeof data['at'] !== 'number') return undefined;
  const { at, phase, owner, answer } = data;
  if (phase === 'exchanging' && typeof owner === 'string') return { at, phase, owner };
  if (phase === 'unfinished') return { at, phase };
  return typeof answer === 'string' ? { at, answer } : { at };
});

const revokedCodec = jsonCodec<RevokedToken>(1, (data) =>
  isRecord(data) && typeof data['exp'] === 'number' ? { exp: data['exp'] } : undefined,
);

/** What a logout mark is keyed by. */
export interface LogoutSubject {
  readonly by: 'sid' | 'sub';
  readonly value: string;
}

/** Lifetimes (ms) of one app's records. */
export interface AppKeyspaceOptions {
  /** The app's name; every key of the app is scoped by it. */
  readonly app: string;
  /** Session absolute lifetime: server sessions, their indexes and logout marks live this long. */
  readonly sessionMaxAge: number;
  /** How long a login flow may take; replay marks outlive it. */
  readonly loginTimeout: number;
  /** Refresh lease lifetime, renewed while a grant runs (`refresh.lockTtl`). */
  readonly refreshLockTtl: number;
  /** How long a finished refresh's result stays for late arrivals (`refresh.resultTtl`). */
  readonly refreshResultTtl: number;
  /** Default `Date.now`. */
  readonly now?: Clock;
}

/** Every keyspace one app uses. */
export interface AppKeyspaces {
  /** Server sessions by session id; the value is sealed with the session's own key. */
  readonly serverSessions: Keyspace<string, string>;
  /** Server session ids by the IdP's `sid`. */
  readonly sessionsBySid: SetKeyspace<string>;
  /** Server session ids by `sub`. */
  readonly sessionsBySub: SetKeyspace<string>;
  /** Login `state` values being redeemed or already redeemed, by `sha256Base64url` of the state. */
  readonly loginReplayMarks: Keyspace<string, LoginMark>;
  /** Refresh lease per refresh-token digest; the value is the holder's owner token. */
  readonly refreshLocks: Keyspace<string, string>;
  /** A finished refresh per old refresh-token digest, sealed with the session's key. */
  readonly refreshResults: Keyspace<string, string>;
  /** Back- or front-channel logouts by `sid` or `sub`: sessions issued before `at` are over. */
  readonly logoutMarks: Keyspace<LogoutSubject, Mark>;
  /** Revoked access-token ids (`jti`). */
  readonly revokedTokens: Keyspace<string, RevokedToken>;
  /** Back-channel logout tokens already used, by a digest of issuer and `jti`. */
  readonly logoutTokenReplay: Keyspace<string, Mark>;
  /** Sessions ended by logout, by session identity: a copied cookie of one is refused. */
  readonly endedSessions: Keyspace<string, Mark>;
  /** DPoP proofs already used (RFC 9449 §11.1), by a digest of the key thumbprint and `jti`. */
  readonly dpopProofs: Keyspace<string, Mark>;
}

/** Builds the keyspaces of one app over a backend. */
export function createAppKeyspaces(
  backend: StoreBackend,
  options: AppKeyspaceOptions,
): AppKeyspaces {
  const app = part(options.app);
  const now = options.now ?? Date.now;
  return {
    serverSessions: new Keyspace(backend, {
      name: 'session',
      key: (id: string) => `${app}:${part(id)}`,
      codec: stringCodec(1),
      ttl: options.sessionMaxAge,
    }),
    sessionsBySid: new SetKeyspace(backend, {
      name: 'session-by-sid',
      key: (sid: string) => `${app}:${part(sid)}`,
      ttl: options.sessionMaxAge,
    }),
    sessionsBySub: new SetKeyspace(backend, {
      name: 'session-by-sub',
      key: (sub: string) => `${app}:${part(sub)}`,
      ttl: options.sessionMaxAge,
    }),
    loginReplayMarks: new Keyspace(backend, {
      name: 'login-replay',
      key: (stateDigest: string) => `${app}:${part(stateDigest)}`,
      codec: loginMarkCodec,
      // Outlives the login cookie, so a state cannot be redeemed again while it could be valid.
      // `LoginStates` writes its marks with their own TTLs: used and unfinished ones also cover
      // `oidc.clockSkew`, a claim held during a code exchange a short one.
      ttl: options.loginTimeout * 2,
    }),
    refreshLocks: new Keyspace(backend, {
      name: 'refresh-lock',
      key: (tokenDigest: string) => `${app}:${part(tokenDigest)}`,
      codec: stringCodec(1),
      ttl: options.refreshLockTtl,
    }),
    refreshResults: new Keyspace(backend, {
      name: 'refresh-result',
      key: (tokenDigest: string) => `${app}:${part(tokenDigest)}`,
      codec: stringCodec(1),
      ttl: options.refreshResultTtl,
    }),
    logoutMarks: new Keyspace(backend, {
      name: 'logout',
      key: (subject: LogoutSubject) => `${app}:${subject.by}:${part(subject.value)}`,
      codec: markCodec,
      ttl: options.sessionMaxAge,
    }),
    logoutTokenReplay: new Keyspace(backend, {
      name: 'logout-token-replay',
      key: (digest: string) => `${app}:${part(digest)}`,
      codec: markCodec,
      // Longer than any logout token is accepted (10 minutes by default).
      ttl: 30 * 60_000,
    }),
    endedSessions: new Keyspace(backend, {
      name: 'session-ended',
      key: (id: string) => `${app}:${part(id)}`,
      codec: markCodec,
      ttl: options.sessionMaxAge,
    }),
    dpopProofs: new Keyspace(backend, {
      name: 'dpop-proof',
      key: (digest: string) => `${app}:${part(digest)}`,
      codec: markCodec,
      // Written with the proof window as TTL (`bearer.dpop.maxAge` plus twice its skew).
      ttl: 3_600_000,
    }),
    revokedTokens: new Keyspace(backend, {
      name: 'revoked-token',
      key: (jti: string) => `${app}:${part(jti)}`,
      codec: revokedCodec,
      // Kept until the token's own expiry; at least a second so a just-expired one still lands.
      ttl: (record: RevokedToken) => Math.max(1_000, record.exp - now()),
    }),
  };
}
