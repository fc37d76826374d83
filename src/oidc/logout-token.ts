/** Logout token validation for OIDC Back-Channel Logout 1.0 §2.6. */
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { verifyWithKeyRefetch, type ProviderKeyGetter } from './provider-keys.ts';
import type { TokenPolicy } from './id-token.ts';
import { TokenInvalidError } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import { classifyIdpFailure } from './oidc-errors.ts';

/** The event a logout token must carry (Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** What a valid logout token says: end the sessions with this `sid` and/or `sub`. */
export interface LogoutTokenClaims {
  /** Unique id, for replay protection. */
  readonly jti: string;
  readonly sid?: string;
  readonly sub?: string;
  /** Issued-at, seconds since the epoch (as in the token). */
  readonly iat: number;
}

export interface LogoutTokenPolicy extends TokenPolicy {
  /** Oldest `iat` accepted, in milliseconds; bounds how long replay records must be kept. */
  readonly maxAgeMs: number;
}

function fail(reason: string): never {
  throw new TokenInvalidError('logout_token', reason);
}

/**
 * Verifies a back-channel logout token: signature (`policy.algorithms`: the provider's ID-token
 * algorithms the app allows), `iss`, `aud`, `iat` (not too
 * old), `jti`, the back-channel logout event, `sid` and/or `sub`, and no `nonce` (so an ID token
 * can never be replayed as a logout token). `typ` may be absent, `JWT` or `logout+jwt`.
 */
export async function verifyLogoutToken(
  token: string,
  getKey: ProviderKeyGetter,
  policy: LogoutTokenPolicy,
): Promise<LogoutTokenClaims> {
  // jose would refuse every algorithm for an empty list too; say why.
  if (policy.algorithms.length === 0) fail('no algorithm allowed for logout tokens');
  let typ: unknown;
  try {
    typ = decodeProtectedHeader(token).typ;
  } catch {
    fail('not a JWS');
  }
  if (typ !== undefined) {
    if (typeof typ !== 'string') fail('unexpected typ');
    const normalized = typ.toLowerCase().replace(/^application\//, '');
    if (normalized !== 'jwt' && normalized !== 'logout+jwt') fail('unexpected typ');
  }
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await verifyWithKeyRefetch(getKey, () =>
      jwtVerify(token, getKey, {
        issuer: policy.issuer,
        audience: policy.clientId,
        algorithms: [...policy.algorithms],
        clockTolerance: Math.ceil(policy.clockSkewMs / 1000),
        currentDate: new Date(policy.now()),
        maxTokenAge: Math.ceil(policy.maxAgeMs / 1000),
        requiredClaims: ['iat', 'jti'],
      }),
    ));
  } catch (err) {
    throw classifyIdpFailure(err, 'logout_token');
  }
  const { jti, sid, sub, iat, events } = payload;
  if (payload['nonce'] !== undefined) fail('nonce present');
  if (!isRecord(events)) fail('events missing');
  if (!isRecord(events[BACKCHANNEL_LOGOUT_EVENT])) fail('back-channel logout event missing');
  if (typeof jti !== 'string' || jti === '') fail('jti missing');
  if (sid !== undefined && (typeof sid !== 'string' || sid === '')) fail('sid malformed');
  if (sub !== undefined && (typeof sub !== 'string' || sub === '')) fail('sub malformed');
  if (sid === undefined && sub === undefined) fail('neither sid nor sub');
  if (typeof iat !== 'number') fail('iat missing');
  return {
    jti,
    iat,
    ...(typeof sid === 'string' ? { sid } : {}),
    ...(typeof sub === 'string' ? { sub } : {}),
  };
}
