/** Public paths: requests that need no login (identity headers are still scrubbed). */
import { PathRule, type PathPattern } from './path-rules.ts';
import type { RequestPath } from './request-path.ts';

export type PublicPathRule = PathPattern & { readonly methods?: readonly string[] };

export class PublicPaths {
  readonly #rules: readonly PathRule[];

  constructor(rules: readonly PublicPathRule[]) {
    this.#rules = rules.map((rule) => new PathRule(rule, rule.methods));
  }

  /**
   * True when one entry covers every reading of the path (see {@link PathRule}): `/public/..;/admin`
   * is read as `/admin` by servlet containers, so it is not public, while `/public/./app.js` is.
   * An entry listing `GET` also covers `HEAD`.
   */
  matches(method: string, path: RequestPath): boolean {
    for (const rule of this.#rules) if (rule.coversEveryReading(method, path)) return true;
    return false;
  }
}
