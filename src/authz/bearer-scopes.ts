/** Scopes a bearer token needs for a request (SPEC §8): the app's, plus those of every matching path rule, compiled once. */
import type { BearerConfig } from '../config/schema.ts';
import { PathRule } from '../policy/path-rules.ts';
import type { RequestPath } from '../policy/request-path.ts';

interface CompiledScopeRule {
  readonly rule: PathRule;
  readonly scopes: readonly string[];
}

/** The required scopes of one app. */
export interface ScopeRequirements {
  /**
   * The required scopes `granted` lacks for this request, space-joined for the RFC 6750 `scope`
   * attribute, or `undefined` when none is missing.
   */
  missing(granted: ReadonlySet<string>, method: string, path: RequestPath): string | undefined;
}

/**
 * Compiles `requiredScopes` and the `paths` rules. Every matching rule applies (adding a rule can
 * only narrow access); a rule applies when its prefix matches any reading of the path the request
 * policy makes (so `/admin;v=1/x` and `/%61dmin/x` cannot dodge an `/admin/` rule), and a rule
 * listing `GET` also covers `HEAD`.
 */
export function compileScopeRequirements(
  requiredScopes: readonly string[],
  rules: BearerConfig['paths'],
): ScopeRequirements {
  const compiled: CompiledScopeRule[] = rules.map((rule) => ({
    rule: new PathRule({ prefix: rule.prefix }, rule.methods),
    scopes: [...rule.requiredScopes],
  }));
  const always = [...new Set(requiredScopes)];
  return {
    missing(granted, method, path) {
      // Built only when a scope is lacking: a token that has them all allocates nothing here.
      let lacking: Set<string> | undefined;
      for (const scope of always) if (!granted.has(scope)) (lacking ??= new Set()).add(scope);
      for (const { rule, scopes } of compiled) {
        if (!rule.appliesTo(method, path)) continue;
        for (const scope of scopes) if (!granted.has(scope)) (lacking ??= new Set()).add(scope);
      }
      return lacking === undefined ? undefined : [...lacking].join(' ');
    },
  };
}
