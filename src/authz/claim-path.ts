/** Claim addresses: a claim named by its full name or a dot path, compiled once, read from own properties only. */
import { isRecord } from '../is-record.ts';

/** A compiled claim address. */
export interface ClaimPath {
  /** The address as configured; safe to show (it comes from the config, never from a token). */
  readonly name: string;
  /**
   * The claim's value, or `undefined` when it is absent. Only own properties of plain objects
   * are read, so `__proto__`, `constructor` or `toString` never reach `Object.prototype`, and
   * arrays are never walked into (`groups.length` is absent).
   */
  read(claims: Readonly<Record<string, unknown>>): unknown;
}

/** One way to take the next step: read `key` here, then continue at segment `next`. */
interface Step {
  readonly key: string;
  readonly next: number;
}

/**
 * Compiles a claim address from configuration.
 *
 * Full names win over dot paths at every level: `https://example.com/roles` is first looked up
 * as one key; only when no such own key exists is the name split at its dots. In general, from
 * each position the longest run of remaining segments that is an own key is taken
 * (`a.b.c` tries `"a.b.c"`, then `"a.b"` then `c`, then `a` then `"b.c"` …). The first key found
 * is followed; there is no backtracking, so one address always means one value.
 *
 * @param name - A full claim name or a dot path such as `realm_access.roles`.
 */
export function compileClaimPath(name: string): ClaimPath {
  const segments = name.split('.');
  const steps: (readonly Step[])[] = [];
  for (let from = 0; from < segments.length; from++) {
    const here: Step[] = [];
    for (let to = segments.length; to > from; to--) {
      here.push({ key: segments.slice(from, to).join('.'), next: to });
    }
    steps.push(here);
  }
  return new CompiledClaimPath(name, steps);
}

/**
 * Compiles a claim address from exact keys, none of them split at dots. Used where a key comes
 * from elsewhere and may itself contain dots, such as a client id in
 * `resource_access.<client id>.roles`.
 *
 * @param keys - The keys to follow, outermost first.
 */
export function compileClaimKeys(keys: readonly string[]): ClaimPath {
  return new CompiledClaimPath(
    keys.join('.'),
    keys.map((key, index) => [{ key, next: index + 1 }]),
  );
}

class CompiledClaimPath implements ClaimPath {
  readonly name: string;
  readonly #steps: readonly (readonly Step[])[];

  constructor(name: string, steps: readonly (readonly Step[])[]) {
    this.name = name;
    this.#steps = steps;
  }

  read(claims: Readonly<Record<string, unknown>>): unknown {
    const steps = this.#steps;
    let value: unknown = claims;
    let at = 0;
    while (at < steps.length) {
      if (!isRecord(value)) return undefined;
      const choices = steps[at];
      if (choices === undefined) return undefined;
      let taken: Step | undefined;
      for (const step of choices) {
        if (Object.hasOwn(value, step.key)) {
          taken = step;
          break;
        }
      }
      if (taken === undefined) return undefined;
      value = value[taken.key];
      at = taken.next;
    }
    return value;
  }
}
