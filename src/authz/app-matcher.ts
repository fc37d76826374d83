/** Chooses the app for a request: a context extension names it, else the first `match` that fits. */
import type { RequestModel } from './request.ts';

export interface Matchable {
  readonly name: string;
  readonly match: {
    /** Exact host names and `*.suffix` wildcards; empty matches any host. */
    readonly hosts: readonly string[];
    readonly pathPrefix: string;
  };
}

interface CompiledRule<T> {
  readonly app: T;
  readonly exact: ReadonlySet<string>;
  /** Suffixes including the leading dot: `*.example.com` → `.example.com`. */
  readonly suffixes: readonly string[];
  readonly anyHost: boolean;
  readonly pathPrefix: string;
}

/** The context extension key Envoy routes set to pick an app (Contour, Gloo, Istio alike). */
export const appExtensionKey = 'app';

export class AppMatcher<T extends Matchable> {
  readonly #byName: ReadonlyMap<string, T>;
  readonly #rules: readonly CompiledRule<T>[];

  constructor(apps: readonly T[]) {
    this.#byName = new Map(apps.map((app) => [app.name, app]));
    this.#rules = apps.map((app) => {
      const hosts = app.match.hosts.map((h) => h.toLowerCase());
      return {
        app,
        exact: new Set(hosts.filter((h) => !h.startsWith('*.'))),
        suffixes: hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1)),
        anyHost: hosts.length === 0,
        pathPrefix: app.match.pathPrefix,
      };
    });
  }

  /**
   * `undefined` when nothing matches. A context extension naming an unknown app matches
   * nothing: a route that asks for an app we do not have is a deployment mistake, not a
   * reason to fall back to host matching.
   */
  select(request: RequestModel): T | undefined {
    const named = request.contextExtensions.get(appExtensionKey);
    if (named !== undefined) return this.#byName.get(named);
    for (const rule of this.#rules) {
      if (!request.path.startsWith(rule.pathPrefix)) continue;
      if (rule.anyHost || rule.exact.has(request.host)) return rule.app;
      for (const suffix of rule.suffixes) {
        if (request.host.endsWith(suffix) && request.host.length > suffix.length) return rule.app;
      }
    }
    return undefined;
  }
}
