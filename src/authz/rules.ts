/** Authorization rules (SPEC §6): compiled once per app, then checked against a caller's claims on every request. */
import type {
  AuthorizationConfig,
  ClaimRule,
  PathRule as PathRuleConfig,
} from '../config/schema.ts';
import { PathRule } from '../policy/path-rules.ts';
import type { RequestPath } from '../policy/request-path.ts';
import { isRecord } from '../is-record.ts';
import { compileClaimKeys, compileClaimPath, type ClaimPath } from '../config/claim-address.ts';

/** Identity claims as decoded from an ID token, userinfo or a bearer token. */
export type Claims = Readonly<Record<string, unknown>>;

/** An app's compiled rules. */
export interface AuthorizationRules {
  /**
   * Decides whether a logged-in caller may make this request.
   *
   * @param method - The HTTP method, upper-case as in the request model.
   * @param path - The path as the request policy reads it.
   * @returns `undefined` when allowed; otherwise a short reason that is safe to show the client
   * (it names the rule or the configured claim, never a value taken from the caller's claims).
   */
  check(claims: Claims, method: string, path: RequestPath): string | undefined;
}

/** The rule fields an app's `authorization` and each of its `paths` share. */
type RuleFields = Pick<
  PathRuleConfig,
  'allowedEmails' | 'allowedDomains' | 'requireGroups' | 'requireRoles' | 'claims'
>;

/** One compiled requirement; a rule set is a list of them, all of which must hold. */
interface Condition {
  /** Client-safe reason returned when the condition does not hold; built at compile time. */
  readonly reason: string;
  holds(claims: Claims): boolean;
}

/**
 * Compiles an app's authorization config into rules checked per request. Everything that can be
 * built ahead (sets, claim paths, reasons) is built here; an app without any rule gets a checker
 * that allows everyone without looking at the request.
 *
 * Semantics:
 * - The app-level fields always apply; then **every** `paths` rule whose `prefix` (and
 *   `methods`, when given) matches also applies, in config order. Applying all matching rules
 *   rather than only the most specific one means adding a rule can only narrow access, never
 *   widen it by shadowing a stricter rule on a shorter prefix.
 * - Within one rule set every configured field must pass (AND); within one field any listed
 *   value passes (OR). Empty fields are not checked. The first failure is reported.
 * - `allowedEmails`: the `email` claim, compared case-insensitively and exactly.
 * - `allowedDomains`: the part of `email` after its last `@`, case-insensitively, and only when
 *   `email_verified` is the boolean `true` (an unverified address proves nothing about its
 *   domain; a string `"true"` is not accepted). An entry `*.example.com` allows any subdomain of
 *   `example.com` at any depth but not `example.com` itself (list both to allow both).
 * - `requireGroups`: the claim named by `groupsClaim` (default `groups`), an array of strings or
 *   a single string. A string is one group: it is not split at commas, because group names and
 *   LDAP-style DNs (`cn=a,ou=groups`) may contain commas, and splitting would let a group named
 *   `x,admins` pass for `admins`. A required group without a leading `/` also matches its
 *   Keycloak full-path form (`admins` matches `/admins`) — only at the top level: `/team/admins`
 *   is another group and does not match `admins`. A required group written with a leading `/`
 *   matches exactly.
 * - `requireRoles`: every claim in `rolesClaims` (default `roles`, `realm_access.roles`) plus
 *   `resource_access.<clientId>.roles` (Keycloak client roles of this app). A roles claim may be
 *   an array of strings, a single string, or an object whose own keys are the roles (Zitadel's
 *   `urn:zitadel:iam:org:project:roles`).
 * - `claims` matchers: `equals` compares strictly (`"1"` is not `1`); `oneOf` likewise against
 *   each value; `contains` holds when the claim is an array with an element strictly equal to
 *   the value, or a string in which the value is one whole space-separated word (the `scope`
 *   claim's syntax, RFC 6749 §3.3 and RFC 9068 §2.2.3) — never a substring, so `admin` is not in
 *   `badmin`; `exists: true` holds when the claim is present and not `null` (OpenID Connect
 *   Core §5.1 treats a `null` claim as absent), `exists: false` when it is absent or `null`.
 * - Claims are addressed by claim address, full name first, then by dot path (see
 *   {@link compileClaimPath}, the same reading header templates use);
 *   only own properties are read.
 * - Path rules match by plain string prefix (`/admin` also covers `/administrator`; write
 *   `/admin/` for a segment, which covers `/admin` itself too), and apply when the prefix matches **any** reading of the path the
 *   request policy makes (`src/policy/request-path.ts`: decoded, `;params` stripped, `\` as `/`,
 *   `//` merged, dot segments resolved), so `/x/../admin/`, `/%61dmin/` and `/admin;v=1/` cannot
 *   slip past an `/admin/` rule. A rule listing `GET` also covers `HEAD`, which most servers
 *   answer with the `GET` handler.
 *
 * @param config - The app's resolved `authorization` config.
 * @param clientId - The app's OAuth client id, for `resource_access.<clientId>.roles`.
 */
export function compileRules(config: AuthorizationConfig, clientId: string): AuthorizationRules {
  const groups = compileClaimPath(config.groupsClaim);
  const roleSources = config.rolesClaims.map(compileClaimPath);
  if (clientId !== '') roleSources.push(compileClaimKeys(['resource_access', clientId, 'roles']));
  const compileFields = (fields: RuleFields) => compileConditions(fields, groups, roleSources);

  const appConditions = compileFields(config);
  const pathRules: { rule: PathRule; conditions: readonly Condition[] }[] = [];
  for (const rule of config.paths) {
    const conditions = compileFields(rule);
    // A path rule with nothing to check cannot refuse anyone: leave it out of the hot loop.
    if (conditions.length === 0) continue;
    pathRules.push({ rule: new PathRule({ prefix: rule.prefix }, rule.methods), conditions });
  }
  if (appConditions.length === 0 && pathRules.length === 0) return ALLOW_EVERYONE;
  return {
    check(claims, method, path) {
      const refused = firstFailure(appConditions, claims);
      if (refused !== undefined) return refused;
      for (const { rule, conditions } of pathRules) {
        if (!rule.appliesTo(method, path)) continue;
        const failed = firstFailure(conditions, claims);
        if (failed !== undefined) return failed;
      }
      return undefined;
    },
  };
}

const ALLOW_EVERYONE: AuthorizationRules = Object.freeze({
  check: () => undefined,
});

function firstFailure(conditions: readonly Condition[], claims: Claims): string | undefined {
  for (const condition of conditions) {
    if (!condition.holds(claims)) return condition.reason;
  }
  return undefined;
}

function compileConditions(
  fields: RuleFields,
  groups: ClaimPath,
  roleSources: readonly ClaimPath[],
): readonly Condition[] {
  const conditions: Condition[] = [];
  if (fields.allowedEmails.length > 0) conditions.push(emailCondition(fields.allowedEmails));
  if (fields.allowedDomains.length > 0) {
    conditions.push(VERIFIED_EMAIL, domainCondition(fields.allowedDomains));
  }
  if (fields.requireGroups.length > 0) {
    conditions.push(groupCondition(fields.requireGroups, groups));
  }
  if (fields.requireRoles.length > 0) {
    conditions.push(roleCondition(fields.requireRoles, roleSources));
  }
  for (const rule of fields.claims) conditions.push(claimCondition(rule));
  return conditions;
}

/** The claim `key` when it is an own string property. */
export function ownString(claims: Claims, key: string): string | undefined {
  if (!Object.hasOwn(claims, key)) return undefined;
  const value = claims[key];
  return typeof value === 'string' ? value : undefined;
}

function emailCondition(allowed: readonly string[]): Condition {
  const emails = new Set(allowed.map((email) => email.toLowerCase()));
  return {
    reason: 'email not allowed',
    holds(claims) {
      const email = ownString(claims, 'email');
      return email !== undefined && emails.has(email.toLowerCase());
    },
  };
}

const VERIFIED_EMAIL: Condition = Object.freeze({
  reason: 'email not verified',
  holds: (claims: Claims) =>
    Object.hasOwn(claims, 'email_verified') && claims.email_verified === true,
});

function domainCondition(allowed: readonly string[]): Condition {
  const exact = new Set<string>();
  // `*.example.com` is kept as `.example.com`: a suffix that needs at least one label before it.
  const suffixes: string[] = [];
  for (const entry of allowed) {
    const domain = entry.toLowerCase();
    if (domain.startsWith('*.')) suffixes.push(domain.slice(1));
    else exact.add(domain);
  }
  return {
    reason: 'email domain not allowed',
    holds(claims) {
      const email = ownString(claims, 'email');
      if (email === undefined) return false;
      const at = email.lastIndexOf('@');
      if (at <= 0 || at === email.length - 1) return false;
      const domain = email.slice(at + 1).toLowerCase();
      if (exact.has(domain)) return true;
      for (const suffix of suffixes) {
        if (domain.length > suffix.length && domain.endsWith(suffix)) return true;
      }
      return false;
    },
  };
}

function groupCondition(required: readonly string[], groups: ClaimPath): Condition {
  const wanted = new Set<string>();
  for (const group of required) {
    wanted.add(group);
    // Keycloak's "full group path" mapper writes top-level groups as `/name`.
    if (!group.startsWith('/')) wanted.add(`/${group}`);
  }
  return {
    reason: 'not in a required group',
    holds: (claims) => hasAnyString(groups.read(claims), wanted),
  };
}

function roleCondition(required: readonly string[], sources: readonly ClaimPath[]): Condition {
  const wanted = new Set(required);
  const wantedList = [...wanted];
  return {
    reason: 'missing required role',
    holds(claims) {
      for (const source of sources) {
        const value = source.read(claims);
        if (hasAnyString(value, wanted)) return true;
        if (isRecord(value)) {
          for (const role of wantedList) if (Object.hasOwn(value, role)) return true;
        }
      }
      return false;
    },
  };
}

/** True when `value` is one of `wanted`, or an array with an element that is. */
function hasAnyString(value: unknown, wanted: ReadonlySet<string>): boolean {
  if (typeof value === 'string') return wanted.has(value);
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item === 'string' && wanted.has(item)) return true;
  }
  return false;
}

type Scalar = string | number | boolean;

function claimCondition(rule: ClaimRule): Condition {
  const path = compileClaimPath(rule.claim);
  const name = printable(rule.claim);
  const mismatch = `claim ${name} does not match`;
  if (rule.exists !== undefined) {
    const present = rule.exists;
    return {
      reason: present ? `claim ${name} is missing` : `claim ${name} must be absent`,
      holds(claims) {
        const value = path.read(claims);
        return (value !== undefined && value !== null) === present;
      },
    };
  }
  if (rule.equals !== undefined) {
    const expected = rule.equals;
    return { reason: mismatch, holds: (claims) => path.read(claims) === expected };
  }
  if (rule.oneOf !== undefined) {
    const allowed = new Set<unknown>(rule.oneOf);
    return { reason: mismatch, holds: (claims) => allowed.has(path.read(claims)) };
  }
  if (rule.contains !== undefined) {
    const needle = rule.contains;
    return { reason: mismatch, holds: (claims) => containsValue(path.read(claims), needle) };
  }
  // The schema demands exactly one matcher; a rule without one cannot be satisfied.
  return { reason: mismatch, holds: () => false };
}

function containsValue(value: unknown, needle: Scalar): boolean {
  if (Array.isArray(value)) return value.includes(needle);
  return typeof value === 'string' && typeof needle === 'string' && hasWord(value, needle);
}

const SPACE = 0x20;

/** True when `word` occurs in `text` delimited by spaces or the ends (RFC 6749 §3.3 scope syntax). */
function hasWord(text: string, word: string): boolean {
  if (word.length === 0 || word.includes(' ')) return false;
  let from = 0;
  for (;;) {
    const at = text.indexOf(word, from);
    if (at === -1) return false;
    const end = at + word.length;
    const startsWord = at === 0 || text.charCodeAt(at - 1) === SPACE;
    const endsWord = end === text.length || text.charCodeAt(end) === SPACE;
    if (startsWord && endsWord) return true;
    from = at + 1;
  }
}

/** Keeps a configured claim name from carrying control characters into a response. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, '?');
}
