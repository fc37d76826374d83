/** Claim addresses, one syntax for rules and header templates: compiled once, read from own properties only. */
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

/** Names between dots, tried as full names first; or one bracketed name, taken exactly. */
type Part =
  | { readonly kind: 'dotted'; readonly names: string[] }
  | { readonly kind: 'exact'; readonly key: string };

// `["any name"]` or `['any name']`: no escapes, so the name cannot hold its own quote.
const bracketed = /^\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\]/;
// A name between dots: anything but whitespace, control characters, dots and brackets.
const dottedName = /^[^\s\p{Cc}.[\]]+/u;

/** What a claim address may be, for error messages. */
const CLAIM_ADDRESS_HINT =
  'must be a claim address: a name (https://example.com/roles), a dot path (realm_access.roles) or a name in brackets (["my claim"]); names with spaces, brackets or empty parts go in brackets';

function parse(address: string): readonly Part[] | undefined {
  const parts: Part[] = [];
  let dotted: string[] | undefined;
  let rest = address;
  do {
    const exact = bracketed.exec(rest);
    if (exact !== null) {
      parts.push({ kind: 'exact', key: exact[1] ?? exact[2] ?? '' });
      dotted = undefined;
      rest = rest.slice(exact[0].length);
      continue;
    }
    if (parts.length > 0) {
      if (!rest.startsWith('.')) return undefined;
      rest = rest.slice(1);
    }
    const name = dottedName.exec(rest);
    if (name === null) return undefined;
    if (dotted === undefined) {
      dotted = [];
      parts.push({ kind: 'dotted', names: dotted });
    }
    dotted.push(name[0]);
    rest = rest.slice(name[0].length);
  } while (rest.length > 0);
  return parts;
}

/**
 * The names an address spells, each dotted name on its own and each bracketed one whole
 * (`tokens.id_token` → `id_token`, `a.b["c.d"]` → `a`, `b`, `c.d`); `undefined` when `address`
 * is not a claim address. For the template variables other than `claims`, which hold no names
 * with dots.
 */
export function addressNames(address: string): readonly string[] | undefined {
  return parse(address)?.flatMap((part) => (part.kind === 'exact' ? [part.key] : part.names));
}

/** Why `address` is not a claim address, or `undefined` when it is one. */
export function claimAddressProblem(address: string): string | undefined {
  return parse(address) === undefined ? CLAIM_ADDRESS_HINT : undefined;
}

/**
 * Compiles a claim address from configuration: the same syntax and the same reading in
 * authorization rules and in identity-header templates (after `claims.`).
 *
 * - `https://example.com/roles`, `email`: a name.
 * - `realm_access.roles`: a dot path into nested claims.
 * - `["https://example.com/roles"]`, `['my claim']`: a name taken exactly, never split; for
 *   names with spaces, brackets or empty parts. The forms chain: `resource_access["my.app"].roles`.
 *
 * Full names win over dot paths at every level: `https://example.com/app.tier` is first looked
 * up as one key; only when no such own key exists is it split at its dots. From each position
 * the longest run of dotted names that is an own key is taken (`a.b.c` tries `"a.b.c"`, then
 * `"a.b"` then `c`, then `a` then `"b.c"` …). The first key found is followed; there is no
 * backtracking, so one address always means one value.
 *
 * @throws TypeError when `address` is not a claim address (the config schema refuses those).
 */
export function compileClaimPath(address: string): ClaimPath {
  const parts = parse(address);
  if (parts === undefined) throw new TypeError(`${address}: ${CLAIM_ADDRESS_HINT}`);
  const steps: (readonly Step[])[] = [];
  for (const part of parts) {
    const at = steps.length;
    if (part.kind === 'exact') {
      steps.push([{ key: part.key, next: at + 1 }]);
      continue;
    }
    const { names } = part;
    for (let from = 0; from < names.length; from++) {
      const here: Step[] = [];
      for (let to = names.length; to > from; to--) {
        here.push({ key: names.slice(from, to).join('.'), next: at + to });
      }
      steps.push(here);
    }
  }
  return new CompiledClaimPath(address, steps);
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
