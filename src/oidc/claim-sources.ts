/** Claim sources (`oidc.claimsFrom`): userinfo and a JWT access token beside the ID token, merged in one documented order. */
import { decodeJwt, jwtVerify } from 'jose';
import type { CustomFetch } from 'openid-client';
import { IdpError, IdpUnavailableError, TokenInvalidError } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import type { TokenPolicy } from './id-token.ts';
import { classifyIdpFailure } from './oidc-errors.ts';
import { verifyWithKeyRefetch, type ProviderKeyGetter } from './provider-keys.ts';

/** Where an app's claims come from; the ID token always counts. */
export type ClaimSource = 'id_token' | 'userinfo' | 'access_token';

/** The sources every app reads unless it says otherwise: Keycloak's realm roles live in the access token. */
export const DEFAULT_CLAIM_SOURCES: readonly ClaimSource[] = ['id_token', 'access_token'];

/**
 * Claims only the ID token may set: who the user is and how and when they authenticated (OIDC
 * Core §2, §5.3.2). A userinfo answer or an access token carries its own `aud`, `exp` or `acr`
 * (Keycloak's access token has `aud: account`), which must never stand for the login's.
 */
export const ID_TOKEN_ONLY_CLAIMS: ReadonlySet<string> = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'nonce',
  'azp',
  'at_hash',
  'c_hash',
  'sid',
  'jti',
  'auth_time',
  'acr',
  'amr',
]);

/** Claims of the ID token that say nothing about the user or the login: never kept in a session. */
const PROTOCOL_ONLY_CLAIMS: ReadonlySet<string> = new Set([
  'iss',
  'aud',
  'exp',
  'iat',
  'nbf',
  'nonce',
  'at_hash',
  'c_hash',
  'jti',
  'azp',
  'sid',
]);

/** Largest userinfo answer read, in bytes: more is a provider fault, never a session. */
export const USERINFO_MAX_BYTES = 65_536;

/** One source's claims, in the order `oidc.claimsFrom` lists them. */
export interface SourcedClaims {
  readonly source: ClaimSource;
  readonly claims: Readonly<Record<string, unknown>>;
}

function setOwn(target: Record<string, unknown>, name: string, value: unknown): void {
  // `__proto__` from a JSON body is an own property there; assignment would set the prototype.
  Object.defineProperty(target, name, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * The session's claims from its sources. Sources apply in `claimsFrom` order, a later one
 * replacing a claim an earlier one set (whole values, never deep-merged); the ID token comes
 * first when the list does not name it. The claims in {@link ID_TOKEN_ONLY_CLAIMS} are then
 * taken from the ID token alone, whatever the other sources said; protocol claims that say
 * nothing about the user (`iss`, `aud`, `exp`, `nonce`, …) are dropped.
 */
export function mergeClaims(
  idToken: Readonly<Record<string, unknown>>,
  sources: readonly SourcedClaims[],
): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  const ordered = sources.some((s) => s.source === 'id_token')
    ? sources
    : [{ source: 'id_token' as const, claims: idToken }, ...sources];
  for (const { source, claims } of ordered) {
    for (const [name, value] of Object.entries(source === 'id_token' ? idToken : claims)) {
      if (source === 'id_token' || !ID_TOKEN_ONLY_CLAIMS.has(name)) setOwn(merged, name, value);
    }
  }
  for (const name of ID_TOKEN_ONLY_CLAIMS) {
    if (Object.hasOwn(idToken, name)) setOwn(merged, name, idToken[name]);
    else delete merged[name];
  }
  for (const name of PROTOCOL_ONLY_CLAIMS) delete merged[name];
  return merged;
}

/** Statuses at which a provider is failing rather than refusing. */
function isServerSideStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

async function readLimited(response: Response): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > USERINFO_MAX_BYTES) {
    await response.body?.cancel();
    throw new IdpUnavailableError('userinfo', 'invalid_response', {
      detail: `answer over ${USERINFO_MAX_BYTES} bytes`,
    });
  }
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early cancels the stream: the rest is never read.
  for await (const value of response.body as AsyncIterable<Uint8Array>) {
    size += value.byteLength;
    if (size > USERINFO_MAX_BYTES) {
      throw new IdpUnavailableError('userinfo', 'invalid_response', {
        detail: `answer over ${USERINFO_MAX_BYTES} bytes`,
      });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface UserinfoRequest {
  readonly endpoint: string;
  readonly accessToken: string;
  /** The ID token's `sub`, which the answer's must equal (OIDC Core §5.3.2). */
  readonly expectedSubject: string;
  readonly fetch: CustomFetch;
  readonly getKey: ProviderKeyGetter;
  readonly policy: TokenPolicy;
}

/**
 * Fetches the userinfo claims with the access token as a Bearer token (RFC 6750 §2.1). A JSON
 * object or a signed JWT (`application/jwt`, verified with the provider's keys; `iss` and `aud`
 * checked when present, OIDC Core §5.3.2) is accepted. A 5xx, a timeout, a non-JSON or oversized
 * answer is an outage (`IdpUnavailableError`); a 4xx is a refusal (`IdpError`); a `sub` other
 * than the ID token's is `TokenInvalidError`.
 */
export async function fetchUserinfo(request: UserinfoRequest): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await request.fetch(request.endpoint, {
      method: 'GET',
      headers: {
        authorization: `Bearer ${request.accessToken}`,
        accept: 'application/json, application/jwt',
      },
      body: undefined,
      redirect: 'manual',
    });
  } catch (err) {
    throw classifyIdpFailure(err, 'userinfo');
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    if (isServerSideStatus(response.status)) {
      throw new IdpUnavailableError('userinfo', 'http_status', { httpStatus: response.status });
    }
    throw new IdpError('userinfo', response.status === 401 ? 'invalid_token' : 'refused', {
      httpStatus: response.status,
    });
  }
  const type = (response.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
  const body = await readLimited(response);
  let claims: unknown;
  if (type === 'application/jwt') {
    claims = await verifySignedUserinfo(body.trim(), request);
  } else {
    try {
      claims = JSON.parse(body);
    } catch {
      claims = undefined;
    }
  }
  if (!isRecord(claims)) {
    throw new IdpUnavailableError('userinfo', 'invalid_response', {
      detail: `not a JSON object or signed JWT (content-type ${JSON.stringify(type?.slice(0, 60) ?? '')})`,
    });
  }
  if (claims['sub'] !== request.expectedSubject) {
    throw new TokenInvalidError('userinfo', 'sub differs from the ID token');
  }
  return claims;
}

async function verifySignedUserinfo(
  jwt: string,
  request: UserinfoRequest,
): Promise<Record<string, unknown>> {
  const { policy, getKey } = request;
  try {
    const { payload } = await verifyWithKeyRefetch(getKey, () =>
      jwtVerify(jwt, getKey, {
        algorithms: [...policy.algorithms],
        clockTolerance: Math.ceil(policy.clockSkewMs / 1000),
        currentDate: new Date(policy.now()),
      }),
    );
    if (payload.iss !== undefined && payload.iss !== policy.issuer) {
      throw new TokenInvalidError('userinfo', 'iss is not the issuer');
    }
    const aud = payload.aud;
    if (aud !== undefined && !(Array.isArray(aud) ? aud : [aud]).includes(policy.clientId)) {
      throw new TokenInvalidError('userinfo', 'aud is not this client');
    }
    return payload;
  } catch (err) {
    throw classifyIdpFailure(err, 'userinfo');
  }
}

/**
 * The claims of an access token that is a JWT from this issuer, verified with the provider's
 * keys (its audience is the resource's, not checked); `undefined` for an opaque token, one from
 * elsewhere, or one that fails verification — such a token is the resource server's business and
 * its claims are simply not used. A JWKS outage still rejects (`IdpUnavailableError`).
 */
export async function accessTokenClaims(
  accessToken: string,
  getKey: ProviderKeyGetter,
  policy: TokenPolicy,
): Promise<Record<string, unknown> | undefined> {
  let issuer: unknown;
  try {
    issuer = decodeJwt(accessToken).iss;
  } catch {
    return undefined;
  }
  if (issuer !== policy.issuer) return undefined;
  try {
    const { payload } = await verifyWithKeyRefetch(getKey, () =>
      jwtVerify(accessToken, getKey, {
        issuer: policy.issuer,
        algorithms: [...policy.algorithms],
        clockTolerance: Math.ceil(policy.clockSkewMs / 1000),
        currentDate: new Date(policy.now()),
      }),
    );
    return payload;
  } catch (err) {
    const failure = classifyIdpFailure(err, 'jwks');
    if (failure instanceof IdpUnavailableError) throw failure;
    return undefined;
  }
}
