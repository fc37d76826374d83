/** Which request headers pose as an app's identity headers, and the removal lists that keep them out. */
import { maxIdentityNameSeparators } from '../header-value.ts';
import { noRemovals, type HeaderPair, type RemovalList } from './verdict.ts';

/**
 * The name an upstream may read a header as: CGI, WSGI, PHP, Rack and nginx (with
 * `underscores_in_headers`) fold `_` into `-` and ignore case, so `X_Auth_Request_User` reaches
 * them as `x-auth-request-user`.
 */
export function foldHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes('_') ? lower.replaceAll('_', '-') : lower;
}

/**
 * Every lower-case spelling of `name` with each `-` or `_` as either; the config refuses names
 * with more than {@link maxIdentityNameSeparators} of them.
 */
export function spellingsOf(name: string): string[] {
  const lower = name.toLowerCase();
  const positions: number[] = [];
  for (let i = 0; i < lower.length; i++) {
    if (lower[i] === '-' || lower[i] === '_') positions.push(i);
  }
  if (positions.length > maxIdentityNameSeparators) {
    throw new Error(`header name ${name} has more than ${maxIdentityNameSeparators} - or _`);
  }
  const out: string[] = [];
  for (let mask = 0; mask < 1 << positions.length; mask++) {
    const chars = [...lower];
    positions.forEach((at, bit) => (chars[at] = (mask & (1 << bit)) === 0 ? '-' : '_'));
    out.push(chars.join(''));
  }
  return out;
}

const noNames: readonly string[] = Object.freeze([]);

/** Removal lists kept per set of identity headers an allow sets; a few per app in practice. */
const maxCachedLists = 64;
/** Beyond this many identity headers a set is not keyed by a bit mask (and not cached). */
const maxMaskedNames = 30;

/** The names an allow's identity headers set, and what must still be removed (see `setBy`). */
export interface SetHeaders {
  readonly names: ReadonlySet<string>;
  readonly removals: RemovalList;
}

/**
 * An app's identity headers (`names`, lower-case) and what forging them takes, built once at
 * start. A forged copy is any request header whose folded name is an identity header's folded
 * name, and that the allow does not overwrite by setting that very header.
 */
export class IdentityRemovals {
  readonly #names: readonly string[];
  readonly #canonical: ReadonlySet<string>;
  readonly #folded: ReadonlySet<string>;
  /** Spellings of every name that are not themselves an identity header. */
  readonly #otherSpellings: readonly string[];
  readonly #lists = new Map<number, RemovalList>();
  /** Each name's bit in the masks that key `#lists` and `#sets`. */
  readonly #bits = new Map<string, number>();
  readonly #sets = new Map<number, SetHeaders>();
  /** The removal list of an allow that sets nothing (a public path). */
  readonly all: RemovalList;

  constructor(names: readonly string[]) {
    this.#names = Object.freeze([...new Set(names.map((name) => name.toLowerCase()))]);
    this.#canonical = new Set(this.#names);
    this.#folded = new Set(this.#names.map(foldHeaderName));
    const others = new Set<string>();
    for (const name of this.#names) {
      for (const spelling of spellingsOf(name)) {
        if (!this.#canonical.has(spelling)) others.add(spelling);
      }
    }
    this.#otherSpellings = Object.freeze([...others]);
    this.all = this.#build(undefined);
    if (this.#names.length <= maxMaskedNames) {
      this.#names.forEach((name, i) => this.#bits.set(name, 1 << i));
    }
  }

  /**
   * The names `headers` set and their removal list (see `forSet`): the same objects for every
   * allow that sets the same identity headers, so a remembered identity holds no set of its
   * own. A set with a name that is not an identity header is built anew each time.
   */
  setBy(headers: readonly HeaderPair[]): SetHeaders {
    let mask = 0;
    for (const [name] of headers) {
      const bit = this.#bits.get(name);
      if (bit === undefined) return this.#setHeaders(headers);
      mask |= bit;
    }
    let found = this.#sets.get(mask);
    if (found === undefined) {
      found = this.#setHeaders(headers);
      if (this.#sets.size < maxCachedLists) this.#sets.set(mask, found);
    }
    return found;
  }

  #setHeaders(headers: readonly HeaderPair[]): SetHeaders {
    const names = new Set<string>();
    for (const [name] of headers) names.add(name);
    return { names, removals: this.forSet(names) };
  }

  /**
   * The request's headers that pose as an identity header, except those in `setNames`, which
   * the allow overwrites. `headers` has lower-case names, `underscored` those of its names that
   * hold `_` (as the request model keeps them): a name without `_` folds to itself, so only
   * those need folding, and a request without any costs one lookup per identity header.
   */
  forgedIn(
    headers: ReadonlyMap<string, string>,
    underscored: readonly string[],
    setNames?: ReadonlySet<string>,
  ): readonly string[] {
    let found: string[] | undefined;
    for (const name of this.#folded) {
      if (headers.has(name) && setNames?.has(name) !== true) (found ??= []).push(name);
    }
    for (const name of underscored) {
      if (this.#folded.has(name.replaceAll('_', '-')) && setNames?.has(name) !== true) {
        (found ??= []).push(name);
      }
    }
    return found ?? noNames;
  }

  /**
   * Every spelling of every identity header except the ones in `setNames` (see
   * `Allow.identityRemovals`). Lists are kept per set, so an allow does not build one.
   */
  forSet(setNames: ReadonlySet<string>): RemovalList {
    if (setNames.size === 0) return this.all;
    if (this.#names.length > maxMaskedNames) return this.#build(setNames);
    // Names that are not identity headers change nothing in the list.
    let mask = 0;
    for (const name of setNames) mask |= this.#bits.get(name) ?? 0;
    let list = this.#lists.get(mask);
    if (list === undefined) {
      list = this.#build(setNames);
      if (this.#lists.size < maxCachedLists) this.#lists.set(mask, list);
    }
    return list;
  }

  #build(setNames: ReadonlySet<string> | undefined): RemovalList {
    const names = this.#names.filter((name) => setNames?.has(name) !== true);
    names.push(...this.#otherSpellings);
    if (names.length === 0) return noRemovals;
    return Object.freeze({ names: Object.freeze(names), joined: names.join(', ') });
  }
}
