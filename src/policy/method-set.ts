/** The methods a path rule covers: compiled once, case-insensitive, and `GET` always brings `HEAD`. */

/** A set of HTTP methods. */
export interface MethodSet {
  /** True when `method` (any case) is in the set. */
  has(method: string): boolean;
}

/** The set of a rule that lists no methods: every method. */
const anyMethod: MethodSet = Object.freeze({ has: () => true });

/**
 * Compiles a rule's `methods`. `undefined` means every method. A list with `GET` also covers
 * `HEAD`: servers answer `HEAD` with the `GET` handler (RFC 9110 §9.3.2), so a rule that
 * restricts or opens `GET` must do the same for `HEAD` or be trivially bypassed (or, for a public
 * path, refuse the health probe that sends `HEAD`).
 */
export function compileMethodSet(methods: readonly string[] | undefined): MethodSet {
  if (methods === undefined) return anyMethod;
  const set = new Set(methods.map((method) => method.toUpperCase()));
  if (set.has('GET')) set.add('HEAD');
  return Object.freeze({
    // The request model upper-cases methods already; the second look is for direct callers.
    has: (method: string) => set.has(method) || set.has(method.toUpperCase()),
  });
}
