/** The identity headers and last allow of recent sessions and bearer tokens, so a hot one is not rebuilt per request. */
import type { AppRuntime } from './app-runtime.ts';
import {
  allow,
  shared,
  type Allow,
  type AllowReason,
  type HeaderPair,
  type MetadataEntry,
  type RemovalList,
} from './verdict.ts';

/**
 * What an allow does to the request's `cookie` header: `undefined` leaves it alone, `''`
 * removes it (nothing but our cookies in it), anything else replaces it.
 */
export type CookieChange = string | undefined;

interface LastAllow {
  readonly scrubbed: readonly string[];
  readonly alsoRemove: string | undefined;
  readonly cookie: CookieChange;
  readonly verdict: Allow;
}

/** What one identity renders to for one app. */
export interface RenderedIdentity {
  readonly headers: HeaderPair[];
  readonly metadata: readonly MetadataEntry[];
  /**
   * When it must be rendered again, ms since the epoch (a signed upstream assertion nearing
   * its expiry); `Infinity` when never.
   */
  readonly renewAt: number;
}

/** One identity (a session, a verified token) as one app renders it. */
export interface MemoEntry {
  readonly app: AppRuntime;
  /** The identity headers to set, rendered once; frozen. */
  readonly headers: readonly HeaderPair[];
  /** The `dynamic_metadata` entries of the identity; frozen. */
  readonly metadata: readonly MetadataEntry[];
  /** See {@link RenderedIdentity.renewAt}. */
  readonly renewAt: number;
  /** Their names, which a request's forged copies need not be removed for (a set overwrites). */
  readonly names: ReadonlySet<string>;
  /** Every spelling of the app's identity headers these do not set (`Allow.identityRemovals`). */
  readonly identityRemovals: RemovalList;
  /** False for an entry made for one request only (see {@link oneOff}): its allows are not kept. */
  readonly kept: boolean;
  last: LastAllow | undefined;
}

/**
 * Default number of identities remembered: an entry with its allow and encoding is 1–2 KB, so
 * this stays within a few MB beside a session cache of 100,000 (SPEC §13: under 300 MiB RSS).
 */
const defaultMaxEntries = 1_024;

/**
 * A bounded map from an identity object to its rendered headers and the last allow built for
 * it. Keys are the objects the caches hand out (a cached session, a cached token's identity),
 * so a hit needs no hashing; a session re-issued, refreshed or revoked is another object or
 * never gets this far. Oldest entries go first; hits do not reorder (a hot identity evicted by
 * 1,024 newer ones is simply rendered again).
 *
 * Nothing per request is kept unless the next request needs exactly the same: the request's
 * own parts (the forged identity headers it carries, its other cookies) are compared before the
 * last allow is handed out again, and allows with per-request response headers are never kept.
 */
export class AllowMemo<K extends object> {
  readonly #entries = new Map<K, MemoEntry>();
  readonly #max: number;

  constructor(maxEntries: number = defaultMaxEntries) {
    this.#max = maxEntries;
  }

  /**
   * The entry of `key` for `app` at `now` (ms since the epoch); `render` makes the headers when
   * there is none yet, or when the entry's `renewAt` has come. Headers that `mayKeep` refuses
   * (e.g. ones carrying a bearer token, which is otherwise held only as a digest) make an entry
   * for this request alone.
   */
  entryFor(
    key: K,
    app: AppRuntime,
    now: number,
    render: () => RenderedIdentity,
    mayKeep: (headers: readonly HeaderPair[]) => boolean = () => true,
  ): MemoEntry {
    const found = this.#entries.get(key);
    if (found !== undefined && found.app === app && now < found.renewAt) return found;
    const rendered = render();
    if (!mayKeep(rendered.headers)) return newEntry(app, rendered, false);
    const entry = newEntry(app, rendered, true);
    if (found === undefined && this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, entry);
    return entry;
  }
}

function newEntry(app: AppRuntime, rendered: RenderedIdentity, kept: boolean): MemoEntry {
  // Shared by every identity that sets the same headers: a set per entry would cost a few
  // hundred bytes and an allocation on each miss.
  const { names, removals } = app.identityRemovals.setBy(rendered.headers);
  return {
    app,
    headers: Object.freeze(rendered.headers),
    metadata: Object.freeze(rendered.metadata),
    renewAt: rendered.renewAt,
    names,
    identityRemovals: removals,
    kept,
    last: undefined,
  };
}

/** An entry for an identity that will not be seen again as the same object. */
export function oneOff(app: AppRuntime, render: () => RenderedIdentity): MemoEntry {
  return newEntry(app, render(), false);
}

/**
 * A copy of a string cut from a request header: a slice would keep the whole header (a session
 * cookie of kilobytes) alive for as long as the allow holding it is kept.
 */
function detached(value: string): string {
  return JSON.parse(JSON.stringify(value)) as string;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The allow for one request of the entry's identity: the entry's identity headers, then the
 * request's `cookie` change; `scrubbed` (forged identity headers the request carries) and
 * `alsoRemove`, then `cookie` when it goes, removed. With `responseHeaders` (a re-issued
 * cookie) the allow is the request's own; without, it is the same frozen object as for the
 * previous request when that needed exactly the same, and is kept for the next.
 */
export function allowFor(
  entry: MemoEntry,
  reason: AllowReason,
  scrubbed: readonly string[],
  alsoRemove: string | undefined,
  cookie: CookieChange,
  responseHeaders: readonly HeaderPair[] = [],
): Allow {
  const keep = entry.kept && responseHeaders.length === 0;
  const last = entry.last;
  if (
    keep &&
    last !== undefined &&
    last.cookie === cookie &&
    last.alsoRemove === alsoRemove &&
    sameNames(last.scrubbed, scrubbed)
  ) {
    return last.verdict;
  }
  const forwarded = cookie === undefined || cookie === '' || !keep ? cookie : detached(cookie);
  const upstreamHeaders: readonly HeaderPair[] =
    forwarded === undefined || forwarded === ''
      ? entry.headers
      : [...entry.headers, ['cookie', forwarded]];
  const removeHeaders = [...scrubbed];
  if (alsoRemove !== undefined) removeHeaders.push(alsoRemove);
  if (cookie === '') removeHeaders.push('cookie');
  const built = allow(reason, {
    upstreamHeaders,
    removeHeaders,
    identityRemovals: entry.identityRemovals,
    responseHeaders,
    metadata: entry.metadata,
  });
  if (!keep) return built;
  const verdict = shared(built);
  entry.last = { scrubbed, alsoRemove, cookie: forwarded, verdict };
  return verdict;
}
