/** One path rule (a prefix or an exact path, with its methods) matched over every reading of a path. */
import type { RequestPath } from './request-path.ts';

/** A rule's path: a plain string prefix (`/admin` also covers `/administrator`), or one exact path. */
export type PathPattern = { readonly prefix: string } | { readonly exact: string };

/**
 * Compiles a rule's `methods` into a test. `undefined` means every method. A list with `GET`
 * also covers `HEAD`: servers answer `HEAD` with the `GET` handler (RFC 9110 §9.3.2), so a rule
 * that restricts or opens `GET` must do the same for `HEAD` or be trivially bypassed (or, for a
 * public path, refuse the health probe that sends `HEAD`).
 */
function compileMethods(methods: readonly string[] | undefined): (method: string) => boolean {
  if (methods === undefined) return () => true;
  const set = new Set(methods.map((method) => method.toUpperCase()));
  if (set.has('GET')) set.add('HEAD');
  // The request model upper-cases methods already; the second look is for direct callers.
  return (method) => set.has(method) || set.has(method.toUpperCase());
}

/**
 * For a prefix written as a segment (`/admin/`), the segment itself (`/admin`), which servlet
 * containers (Servlet §12.2) and Express's non-strict routing serve as part of it; `undefined`
 * for `/` and for prefixes not ending in `/`.
 */
export function bareSegmentOf(prefix: string): string | undefined {
  return prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : undefined;
}

/**
 * A path rule, compiled once. The two questions it answers differ on purpose:
 * - a rule that **restricts** (scopes, claim rules) applies when *any* reading matches, so no
 *   reading an upstream may make escapes it;
 * - a rule that **opens** (a public path) holds only when *every* reading matches, so no
 *   reading an upstream may make leads outside it.
 */
export class PathRule {
  readonly #prefix: boolean;
  readonly #path: string;
  readonly #covers: (method: string) => boolean;
  /** For a prefix that ends in `/` (`/admin/`), the segment itself without it (`/admin`). */
  readonly #segment: string | undefined;

  constructor(pattern: PathPattern, methods?: readonly string[]) {
    this.#prefix = 'prefix' in pattern;
    this.#path = 'prefix' in pattern ? pattern.prefix : pattern.exact;
    this.#covers = compileMethods(methods);
    this.#segment = this.#prefix ? bareSegmentOf(this.#path) : undefined;
  }

  /**
   * The method is covered and at least one reading of the path matches. A prefix written as a
   * segment (`/admin/`) also restricts the segment itself (`/admin`): servlet containers map
   * `/admin` to `/admin/*` (Servlet §12.2) and Express's default non-strict routing serves
   * `/admin` as `/admin/`.
   */
  appliesTo(method: string, path: RequestPath): boolean {
    if (!this.#covers(method)) return false;
    for (const reading of path.readings) {
      if (this.#matches(reading) || reading === this.#segment) return true;
    }
    return false;
  }

  /** The method is covered and every reading of the path matches. */
  coversEveryReading(method: string, path: RequestPath): boolean {
    if (!this.#covers(method)) return false;
    for (const reading of path.readings) if (!this.#matches(reading)) return false;
    return true;
  }

  #matches(reading: string): boolean {
    return this.#prefix ? reading.startsWith(this.#path) : reading === this.#path;
  }
}
