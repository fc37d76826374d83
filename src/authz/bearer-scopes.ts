/** Scopes a bearer token needs for a request (SPEC §8): the app's, plus those of every matching path rule, compiled once. */

export interface ScopeRuleConfig {
  readonly prefix: string;
  readonly methods?: readonly string[] | undefined;
  readonly requiredScopes: readonly string[];
}

interface CompiledScopeRule {
  readonly prefix: string;
  readonly methods: ReadonlySet<string> | undefined;
  readonly scopes: readonly string[];
}

/** The required scopes of one app. */
export interface ScopeRequirements {
  /**
   * The required scopes `granted` lacks for this request, space-joined for the RFC 6750 `scope`
   * attribute, or `undefined` when none is missing.
   */
  missing(granted: ReadonlySet<string>, method: string, path: string): string | undefined;
}

const AMBIGUOUS_PATH = /[%\\;]|\/\/|(?:^|\/)\.{1,2}(?:\/|$)/;

/**
 * The path as a lenient upstream may read it: dot segments resolved, `\` as `/`, empty segments
 * merged, percent-decoded once. A rule applies when its prefix matches the raw path or this one,
 * so `/x/../admin/` and `/%61dmin/` cannot dodge an `/admin/` rule.
 */
function lenientPath(path: string): string {
  let resolved: string;
  try {
    resolved = new URL(path.replace(/\/{2,}/g, '/'), 'http://h').pathname;
  } catch {
    resolved = path;
  }
  try {
    return decodeURIComponent(resolved);
  } catch {
    return resolved;
  }
}

/**
 * Compiles `requiredScopes` and the `paths` rules. Every matching rule applies (adding a rule can
 * only narrow access); a rule listing `GET` also covers `HEAD`.
 */
export function compileScopeRequirements(
  requiredScopes: readonly string[],
  rules: readonly ScopeRuleConfig[],
): ScopeRequirements {
  const compiled: CompiledScopeRule[] = rules.map((rule) => {
    const methods =
      rule.methods === undefined ? undefined : new Set(rule.methods.map((m) => m.toUpperCase()));
    if (methods?.has('GET') === true) methods.add('HEAD');
    return { prefix: rule.prefix, methods, scopes: [...rule.requiredScopes] };
  });
  const always = [...new Set(requiredScopes)];
  return {
    missing(granted, method, path) {
      // Built only when a scope is lacking: a token that has them all allocates nothing here.
      let lacking: Set<string> | undefined;
      for (const scope of always) if (!granted.has(scope)) (lacking ??= new Set()).add(scope);
      if (compiled.length > 0) {
        const upper = method.toUpperCase();
        const lenient = AMBIGUOUS_PATH.test(path) ? lenientPath(path) : path;
        for (const rule of compiled) {
          if (rule.methods !== undefined && !rule.methods.has(upper)) continue;
          if (!path.startsWith(rule.prefix) && !lenient.startsWith(rule.prefix)) continue;
          for (const scope of rule.scopes) {
            if (!granted.has(scope)) (lacking ??= new Set()).add(scope);
          }
        }
      }
      return lacking === undefined ? undefined : [...lacking].join(' ');
    },
  };
}
