/** Public paths: requests that need no login (identity headers are still scrubbed). */
import type { RequestModel } from './request.ts';

export type PublicPathRule =
  | { readonly prefix: string; readonly methods?: readonly string[] }
  | { readonly exact: string; readonly methods?: readonly string[] };

export class PublicPaths {
  readonly #rules: readonly {
    readonly prefix: boolean;
    readonly path: string;
    readonly methods: ReadonlySet<string> | undefined;
  }[];

  constructor(rules: readonly PublicPathRule[]) {
    this.#rules = rules.map((rule) => ({
      prefix: 'prefix' in rule,
      path: 'prefix' in rule ? rule.prefix : rule.exact,
      methods:
        rule.methods === undefined ? undefined : new Set(rule.methods.map((m) => m.toUpperCase())),
    }));
  }

  /**
   * Matches on the raw path. A path containing dot segments or encoded slashes never matches a
   * prefix rule, so `/public/../admin` cannot borrow a public prefix.
   */
  matches(request: RequestModel): boolean {
    for (const rule of this.#rules) {
      if (rule.methods !== undefined && !rule.methods.has(request.method)) continue;
      if (rule.prefix) {
        if (request.path.startsWith(rule.path) && !hasAmbiguousSegments(request.path)) return true;
      } else if (request.path === rule.path) {
        return true;
      }
    }
    return false;
  }
}

const ambiguous = /(?:^|\/)\.{1,2}(?:\/|$)|%2e|%2f|%5c|\\/i;

function hasAmbiguousSegments(path: string): boolean {
  return ambiguous.test(path);
}
