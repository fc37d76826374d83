/** What the decoded-session cache keeps of a cookie session: what every request reads, claim strings shared. */
import type { Session, SessionClaims, SessionTokens } from './session.ts';

/**
 * A cookie session as the cache holds it: what every request reads (identity, claims, times,
 * the access token and its expiry), and the ID token only for an app that forwards it. The
 * refresh token and an ID token not forwarded are about half of a typical session; they stay
 * in the cookie, read back by the few paths that need them: refresh, logout's
 * `id_token_hint`, re-issuing the cookie (SPEC §13: at most 2 KiB per cached session).
 */
export interface CachedSession
  extends
    Pick<Session, 'id' | 'sub' | 'claims' | 'createdAt' | 'lastSeenAt'>,
    Pick<SessionTokens, 'accessToken' | 'expiresAt'> {
  readonly sid: string | undefined;
  /** The ID token when kept here; `undefined` when it is left in the cookie or there is none. */
  readonly idToken: string | undefined;
  /** Whether the session has an ID token, kept here or not. */
  readonly hasIdToken: boolean;
  /** Whether the session has a refresh token (never kept here). */
  readonly hasRefreshToken: boolean;
}

/**
 * One copy of each short string that many sessions of an app hold alike: the members of array
 * claims (`groups`, `roles`), so that 100,000 cached sessions of one team do not hold 100,000
 * copies of each group name. Bounded: when full it starts over, which costs sharing, never
 * correctness.
 */
export class StringPool {
  readonly #strings = new Map<string, string>();

  /** The pooled string equal to `text` (pooling it if new); at most 10,000 strings of 256 characters. */
  readonly share = (text: string): string => {
    if (text.length > 256) return text;
    const pooled = this.#strings.get(text);
    if (pooled !== undefined) return pooled;
    if (this.#strings.size >= 10_000) this.#strings.clear();
    this.#strings.set(text, text);
    return text;
  };
}

function isStringArray(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * `claims` holding shared strings: a `sub` equal to the session's is that same string, and
 * the members of string-array claims come from `pool`. A copy; the argument is left as it is.
 */
function shareClaimStrings(claims: SessionClaims, sub: string, pool: StringPool): SessionClaims {
  const shared: Record<string, unknown> = { ...claims };
  for (const name of Object.keys(shared)) {
    const value = shared[name];
    if (isStringArray(value)) shared[name] = value.map(pool.share);
  }
  if (shared['sub'] === sub) shared['sub'] = sub;
  return shared;
}

/**
 * What the cache keeps of `session`: the ID token only when `keepIdToken`; claim strings
 * shared through `pool`.
 */
export function toCachedSession(
  session: Session,
  keepIdToken: boolean,
  pool: StringPool,
): CachedSession {
  const { tokens } = session;
  return {
    id: session.id,
    sub: session.sub,
    sid: session.sid,
    claims: shareClaimStrings(session.claims, session.sub, pool),
    accessToken: tokens.accessToken,
    expiresAt: tokens.expiresAt,
    createdAt: session.createdAt,
    lastSeenAt: session.lastSeenAt,
    idToken: keepIdToken ? tokens.idToken : undefined,
    hasIdToken: tokens.idToken !== undefined,
    hasRefreshToken: tokens.refreshToken !== undefined,
  };
}
