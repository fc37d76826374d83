/** ID token validation (OIDC Core §3.1.3.7): signature via the provider's JWKS, issuer, audience, azp, lifetime, alg allow-list. */
import { jwtVerify } from 'jose';
import { verifyWithKeyRefetch, type ProviderKeyGetter } from './provider-keys.ts';
import { TokenInvalidError } from '../errors.ts';
import { classifyIdpFailure } from './oidc-errors.ts';

/** Validated ID token claims. */
export interface IdTokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly exp: number;
  readonly iat: number;
  readonly nonce?: string;
  readonly sid?: string;
  readonly azp?: string;
  readonly [claim: string]: unknown;
}

/**
 * A multi-tenant issuer (Microsoft Entra ID's `common` or `organizations`): the ID token's `iss`
 * must be `template` with `{tenantid}` replaced by the token's own `tid`, a tenant id, and that
 * tenant one of `tenants` (any when empty).
 */
export interface TenantIssuer {
  readonly template: string;
  readonly tenants: readonly string[];
}

const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Why `payload` does not come from an issuer `tenantIssuer` accepts, or `undefined` when it does. */
export function tenantIssuerProblem(
  payload: Readonly<Record<string, unknown>>,
  tenantIssuer: TenantIssuer,
): string | undefined {
  const { tid, iss } = payload;
  if (typeof tid !== 'string' || !TENANT_ID.test(tid)) return 'tid missing or not a tenant id';
  if (iss !== tenantIssuer.template.replace('{tenantid}', tid)) {
    return 'issuer does not match the tenant template';
  }
  const tenants = tenantIssuer.tenants;
  if (tenants.length > 0 && !tenants.some((t) => t.toLowerCase() === tid.toLowerCase())) {
    return 'tenant not allowed';
  }
  return undefined;
}

/** What a token from this provider for this client must satisfy. */
export interface TokenPolicy {
  readonly issuer: string;
  /** When set, `iss` is checked against this template instead of `issuer`. */
  readonly tenantIssuer?: TenantIssuer | undefined;
  readonly clientId: string;
  /** Accepted JWS algorithms. */
  readonly algorithms: readonly string[];
  /** Allowed clock difference, in milliseconds. */
  readonly clockSkewMs: number;
  /** Current time in milliseconds. */
  readonly now: () => number;
}

/**
 * Verifies an ID token's signature and standard claims. The library that ran the code exchange
 * has already checked `nonce`, `azp` and the claim set against real time; this pass uses our JWKS
 * cache, our clock and the configured alg allow-list, so no unsigned or foreign-key token gets in.
 */
export async function verifyIdToken(
  idToken: string,
  getKey: ProviderKeyGetter,
  policy: TokenPolicy,
): Promise<IdTokenClaims> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await verifyWithKeyRefetch(getKey, () =>
      jwtVerify(idToken, getKey, {
        ...(policy.tenantIssuer === undefined ? { issuer: policy.issuer } : {}),
        audience: policy.clientId,
        algorithms: [...policy.algorithms],
        clockTolerance: Math.ceil(policy.clockSkewMs / 1000),
        currentDate: new Date(policy.now()),
        requiredClaims: ['sub', 'iat', 'exp'],
      }),
    ));
  } catch (err) {
    throw classifyIdpFailure(err, 'id_token');
  }
  if (policy.tenantIssuer !== undefined) {
    const problem = tenantIssuerProblem(payload, policy.tenantIssuer);
    if (problem !== undefined) throw new TokenInvalidError('id_token', problem);
  }
  const { aud, azp } = payload;
  // OIDC Core §3.1.3.7 items 4-5: several audiences need azp, and azp must be us.
  if (Array.isArray(aud) && aud.length > 1 && azp === undefined) {
    throw new TokenInvalidError('id_token', 'azp required with several audiences');
  }
  if (azp !== undefined && azp !== policy.clientId) {
    throw new TokenInvalidError('id_token', 'azp is not this client');
  }
  if (typeof payload['sub'] !== 'string' || payload['sub'] === '') {
    throw new TokenInvalidError('id_token', 'sub missing');
  }
  return payload as unknown as IdTokenClaims;
}
