/** Chooses the app for a request: a context extension names it, else the first `match` that fits every reading. */
import { bareSegmentOf } from './path-rules.ts';
import type { RequestPath } from './request-path.ts';

export interface Matchable {
  readonly name: string;
  readonly match: {
    /** Exact host names and `*.suffix` wildcards; empty matches any host. */
    readonly hosts: readonly string[];
    readonly pathPrefix: string;
  };
}

/** The context extension key Envoy routes set to pick an app (Contour, Gloo, Istio alike). */
const appExtensionKey = 'app';

/** Returned when the readings of a path choose different apps. */
export const ambiguousApp: unique symbol = Symbol('ambiguous app');

interface CompiledRule<T> {
  readonly app: T;
  readonly exact: ReadonlySet<string>;
  /** Suffixes including the leading dot: `*.example.com` → `.example.com`. */
  readonly suffixes: readonly string[];
  readonly anyHost: boolean;
  readonly pathPrefix: string;
  /** `/admin` for a prefix `/admin/` (see {@link bareSegmentOf}). */
  readonly bareSegment: string | undefined;
}

/** A configured host as requests are matched against it: lower case, no trailing dot. */
function configuredHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export class AppSelection<T extends Matchable> {
  readonly #byName: ReadonlyMap<string, T>;
  readonly #rules: readonly CompiledRule<T>[];

  constructor(apps: readonly T[]) {
    this.#byName = new Map(apps.map((app) => [app.name, app]));
    this.#rules = apps.map((app) => {
      const hosts = app.match.hosts.map(configuredHost);
      return {
        app,
        exact: new Set(hosts.filter((h) => !h.startsWith('*.'))),
        suffixes: hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1)),
        anyHost: hosts.length === 0,
        pathPrefix: app.match.pathPrefix,
        bareSegment: bareSegmentOf(app.match.pathPrefix),
      };
    });
  }

  /**
   * The app for a request on `host` (normalised, see `host-name.ts`) with this path; `undefined`
   * when nothing matches; {@link ambiguousApp} when its readings choose different apps (or one
   * chooses an app and another none). A context extension naming an unknown app matches
   * nothing: a route that asks for an app we do not have is a deployment mistake, not a reason
   * to fall back to host matching.
   */
  select(
    host: string,
    path: RequestPath,
    contextExtensions: ReadonlyMap<string, string>,
  ): T | undefined | typeof ambiguousApp {
    const named = contextExtensions.get(appExtensionKey);
    if (named !== undefined) return this.#byName.get(named);
    const { readings } = path;
    const first = this.#forReading(host, readings[0]!);
    for (let i = 1; i < readings.length; i++) {
      if (this.#forReading(host, readings[i]!) !== first) return ambiguousApp;
    }
    return first;
  }

  #forReading(host: string, reading: string): T | undefined {
    for (const rule of this.#rules) {
      if (!reading.startsWith(rule.pathPrefix) && reading !== rule.bareSegment) continue;
      if (rule.anyHost || rule.exact.has(host)) return rule.app;
      for (const suffix of rule.suffixes) {
        if (host.endsWith(suffix) && host.length > suffix.length) return rule.app;
      }
    }
    return undefined;
  }
}
