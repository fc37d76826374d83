/** Step-up (OIDC Core §3.1.2.1 `acr_values`/`max_age`, RFC 9470): what a path demands of how and when the user authenticated. */
import type { AuthorizationConfig } from '../config/schema.ts';
import { PathRule } from '../policy/path-rules.ts';
import type { RequestPath } from '../policy/request-path.ts';

/** What a request demands of the login behind its session. */
export interface StepUpDemand {
  /** Acceptable `acr` values, most preferred first; empty: any (or none). */
  readonly acrValues: readonly string[];
  /** Longest time since `auth_time`, ms; `undefined`: no limit. */
  readonly maxAgeMs: number | undefined;
}

/** Why a login does not meet a demand; safe to log (no claim value is in it). */
export type StepUpShortfall =
  | 'acr missing'
  | 'acr not accepted'
  | 'auth_time missing'
  | 'auth_time too old'
  | 'auth_time in the future'
  | 'no acr meets every rule';

interface DemandFields {
  readonly acrValues: readonly string[];
  readonly maxAge?: number | undefined;
}

/** The step-up demands of one app, compiled once. */
export interface StepUpPolicy {
  /** The demand on a request, `undefined` when nothing is demanded. */
  demandFor(method: string, path: RequestPath): StepUpDemand | undefined;
}

const NO_DEMANDS: StepUpPolicy = Object.freeze({ demandFor: () => undefined });

function isDemand(fields: DemandFields): boolean {
  return fields.acrValues.length > 0 || fields.maxAge !== undefined;
}

/**
 * Combines demands that all apply: an `acr` must be in every non-empty list (offered in the
 * order of the last, most specific, list), and the shortest `maxAge` wins.
 */
export function combineDemands(demands: readonly DemandFields[]): StepUpDemand {
  let acrValues: readonly string[] = [];
  let maxAgeMs: number | undefined;
  for (const demand of demands) {
    if (demand.acrValues.length > 0) {
      const earlier = acrValues;
      acrValues =
        earlier.length === 0
          ? demand.acrValues
          : demand.acrValues.filter((acr) => earlier.includes(acr));
      if (acrValues.length === 0) return { acrValues: [], maxAgeMs: 0 };
    }
    if (demand.maxAge !== undefined) {
      maxAgeMs = maxAgeMs === undefined ? demand.maxAge : Math.min(maxAgeMs, demand.maxAge);
    }
  }
  return { acrValues, maxAgeMs };
}

/**
 * Compiles `authorization.acrValues`/`maxAge` and those of `authorization.paths[]`; a path rule
 * applies when its prefix matches any reading of the path, as claim rules do.
 */
export function compileStepUp(config: AuthorizationConfig): StepUpPolicy {
  const appDemand = isDemand(config) ? config : undefined;
  const pathDemands = config.paths
    .filter(isDemand)
    .map((rule) => ({ rule: new PathRule({ prefix: rule.prefix }, rule.methods), fields: rule }));
  if (appDemand === undefined && pathDemands.length === 0) return NO_DEMANDS;
  const appOnly = appDemand === undefined ? undefined : combineDemands([appDemand]);
  return {
    demandFor(method, path) {
      let applying: DemandFields[] | undefined;
      for (const { rule, fields } of pathDemands) {
        if (!rule.appliesTo(method, path)) continue;
        applying ??= appDemand === undefined ? [] : [appDemand];
        applying.push(fields);
      }
      return applying === undefined ? appOnly : combineDemands(applying);
    },
  };
}

/**
 * What keeps the login behind `claims` (its ID token's `acr` and `auth_time`) from meeting
 * `demand` at `now` (ms), allowing `clockSkewMs` either way; `undefined` when it meets it. A
 * demand no `acr` can meet (rules with disjoint lists) is never met.
 */
export function shortfallOf(
  claims: Readonly<Record<string, unknown>>,
  demand: StepUpDemand,
  now: number,
  clockSkewMs: number,
): StepUpShortfall | undefined {
  if (demand.maxAgeMs === 0 && demand.acrValues.length === 0) return 'no acr meets every rule';
  if (demand.acrValues.length > 0) {
    const acr = Object.hasOwn(claims, 'acr') ? claims['acr'] : undefined;
    if (typeof acr !== 'string') return 'acr missing';
    if (!demand.acrValues.includes(acr)) return 'acr not accepted';
  }
  if (demand.maxAgeMs !== undefined) {
    const authTime = Object.hasOwn(claims, 'auth_time') ? claims['auth_time'] : undefined;
    if (typeof authTime !== 'number' || !Number.isFinite(authTime)) return 'auth_time missing';
    const authenticatedAt = authTime * 1000;
    if (authenticatedAt > now + clockSkewMs) return 'auth_time in the future';
    if (now - authenticatedAt > demand.maxAgeMs + clockSkewMs) return 'auth_time too old';
  }
  return undefined;
}

/** The authorization-request parameters that ask the provider for `demand`. */
export function stepUpParams(demand: StepUpDemand): Record<string, string> {
  const params: Record<string, string> = {};
  if (demand.acrValues.length > 0) params['acr_values'] = demand.acrValues.join(' ');
  if (demand.maxAgeMs !== undefined) {
    params['max_age'] = String(Math.floor(demand.maxAgeMs / 1000));
  }
  return params;
}

/**
 * The RFC 9470 §3 challenge for an API caller whose session does not meet `demand`. The values
 * come from the configuration (acr values are printable ASCII without `"` or `\`, checked
 * there), never from the request.
 */
export function insufficientAuthenticationChallenge(realm: string, demand: StepUpDemand): string {
  const parts = [
    `Bearer realm="${realm}"`,
    'error="insufficient_user_authentication"',
    'error_description="a stronger or more recent authentication is required"',
  ];
  if (demand.acrValues.length > 0) parts.push(`acr_values="${demand.acrValues.join(' ')}"`);
  if (demand.maxAgeMs !== undefined) parts.push(`max_age=${Math.floor(demand.maxAgeMs / 1000)}`);
  return parts.join(', ');
}
