/** The session model: who the user is, their tokens, and when the session began and was last used. */
import { randomBytes } from 'node:crypto';
import { isRecord } from '../is-record.ts';

/**
 * The tokens of a session. `expiresAt` is the access token's expiry, ms since the epoch. A
 * session served from the decoded-session cache reads its refresh token (and an ID token the
 * cache did not keep) back from the cookie on first access, so these may be accessors.
 */
export interface SessionTokens {
  readonly accessToken: string;
  readonly refreshToken?: string | undefined;
  readonly idToken?: string | undefined;
  readonly expiresAt: number;
}

/**
 * Identity claims from the ID token (and userinfo): `sub`, `email`, `email_verified`, `name`,
 * `preferred_username`, `groups`, `roles` and whatever else the IdP sent.
 */
export type SessionClaims = Readonly<Record<string, unknown>>;

/** One logged-in session, as stored in a cookie or a server record. */
export interface Session {
  readonly v: 1;
  /** Random identity of this session (96 bits, base64url); names it for revocation. */
  readonly id: string;
  readonly sub: string;
  /** The IdP's session id, for back-channel logout. */
  readonly sid?: string;
  readonly claims: SessionClaims;
  readonly tokens: SessionTokens;
  /** When the user logged in, ms since the epoch; `maxAge` counts from here. */
  readonly createdAt: number;
  /** When the session was last seen in use, ms; `idleTimeout` counts from here. */
  readonly lastSeenAt: number;
}

/** What a new session is made from; identity and times are added when it starts. */
export type NewSession = Pick<Session, 'sub' | 'sid' | 'claims' | 'tokens'>;

/** What an update may change (e.g. after a refresh); identity and times are kept. */
export type SessionChanges = Partial<Pick<Session, 'tokens' | 'claims'>>;

/** A new session from `data`, begun and last seen at `now`, under a fresh random identity (96 bits). */
export function startSession(data: NewSession, now: number): Session {
  return {
    v: 1,
    id: randomBytes(12).toString('base64url'),
    sub: data.sub,
    ...(data.sid === undefined ? {} : { sid: data.sid }),
    claims: data.claims,
    tokens: data.tokens,
    createdAt: now,
    lastSeenAt: now,
  };
}

/** `tokens` as plain data (read out of a cached session's accessors). */
export function plainTokens(tokens: SessionTokens): SessionTokens {
  const { accessToken, refreshToken, idToken, expiresAt } = tokens;
  return {
    accessToken,
    ...(refreshToken === undefined ? {} : { refreshToken }),
    ...(idToken === undefined ? {} : { idToken }),
    expiresAt,
  };
}

/** `session` with `changes` applied and its use recorded at `now`; its tokens as plain data. */
export function changeSession(session: Session, changes: SessionChanges, now: number): Session {
  return {
    ...session,
    tokens: changes.tokens ?? plainTokens(session.tokens),
    ...(changes.claims === undefined ? {} : { claims: changes.claims }),
    lastSeenAt: now,
  };
}

/** Validates decoded JSON as session tokens; `undefined` for anything of another shape. */
export function parseTokens(data: unknown): SessionTokens | undefined {
  if (!isRecord(data)) return undefined;
  const { accessToken, refreshToken, idToken, expiresAt } = data;
  if (typeof accessToken !== 'string' || typeof expiresAt !== 'number') return undefined;
  if (refreshToken !== undefined && typeof refreshToken !== 'string') return undefined;
  if (idToken !== undefined && typeof idToken !== 'string') return undefined;
  return plainTokens({ accessToken, refreshToken, idToken, expiresAt });
}

/** Validates decoded JSON as a session; `undefined` for anything of another shape or version. */
export function parseSession(data: unknown): Session | undefined {
  if (!isRecord(data) || data['v'] !== 1) return undefined;
  const { id, sub, sid, claims, createdAt, lastSeenAt } = data;
  if (typeof id !== 'string' || typeof sub !== 'string' || !isRecord(claims)) return undefined;
  if (sid !== undefined && typeof sid !== 'string') return undefined;
  if (typeof createdAt !== 'number' || typeof lastSeenAt !== 'number') return undefined;
  const tokens = parseTokens(data['tokens']);
  if (tokens === undefined) return undefined;
  return {
    v: 1,
    id,
    sub,
    ...(sid === undefined ? {} : { sid }),
    claims,
    tokens,
    createdAt,
    lastSeenAt,
  };
}
