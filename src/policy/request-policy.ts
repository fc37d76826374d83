/**
 * The request policy: the one place that reads a request's path and host and chooses its app.
 * Every consumer (app selection, public paths, bearer scope rules, claim rules, the app's own
 * endpoints) decides on the {@link RequestPath} it hands out, never on a reading of its own.
 */
import { bareSegmentOf } from './path-rules.ts';
import { refusals, type PolicyRefusal } from './policy-refusal.ts';
import { readRequestPath, type RequestPath } from './request-path.ts';

/** What the policy reads of a request (the pipeline's request model has these and more). */
export interface PolicyRequest {
  /** Normalised, see `host-name.ts`. */
  readonly host: string;
  /** Raw path without the query string, not decoded. */
  readonly path: string;
  readonly contextExtensions: ReadonlyMap<string, string>;
}

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

interface CompiledMatch<T> {
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

/**
 * Built once per config. A request whose path cannot be read ({@link readRequestPath}) or whose
 * readings choose different apps is refused with 400 `ambiguous path`.
 *
 * Why refuse rather than decide on one reading (say the strictest): the request is forwarded raw
 * whatever we decide, and some upstream reads it the other way. Decided as the catch-all app,
 * `/admin;x/y` is served as `/admin/y` by a servlet container; decided as the `/admin/` app, a
 * server that does not strip `;params` serves it as a path of the other app, under rules and
 * public paths we never applied. Apps have no order of strictness to fall back on (each has its
 * own provider, rules and public paths). A 400 is safe on every server, and no browser or honest
 * client sends such a path.
 */
export class RequestPolicy<T extends Matchable> {
  readonly #byName: ReadonlyMap<string, T>;
  readonly #matches: readonly CompiledMatch<T>[];

  constructor(apps: readonly T[]) {
    this.#byName = new Map(apps.map((app) => [app.name, app]));
    this.#matches = apps.map((app) => {
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
   * The readings of the request's path, or why there are none to decide on (a 400). Called
   * once per request; every consumer decides on what it returns.
   */
  readPath(request: PolicyRequest): RequestPath | PolicyRefusal {
    return readRequestPath(request.path);
  }

  /**
   * The app for the request: a context extension names it, else the first `match` that fits
   * every reading. `undefined` when none matches; a refusal when the readings of its path choose
   * different apps (or one chooses an app and another none). A context extension naming an
   * unknown app matches nothing: a route that asks for an app we do not have is a deployment
   * mistake, not a reason to fall back to host matching. Two calls rather than one result
   * object: this runs on every request, and neither call allocates for a plain path.
   */
  selectApp(request: PolicyRequest, path: RequestPath): T | undefined | PolicyRefusal {
    const named = request.contextExtensions.get(appExtensionKey);
    if (named !== undefined) return this.#byName.get(named);
    const { readings } = path;
    const first = this.#forReading(request.host, readings[0]!);
    for (let i = 1; i < readings.length; i++) {
      if (this.#forReading(request.host, readings[i]!) !== first) return refusals['ambiguous path'];
    }
    return first;
  }

  #forReading(host: string, reading: string): T | undefined {
    for (const rule of this.#matches) {
      if (!reading.startsWith(rule.pathPrefix) && reading !== rule.bareSegment) continue;
      if (rule.anyHost || rule.exact.has(host)) return rule.app;
      for (const suffix of rule.suffixes) {
        if (host.endsWith(suffix) && host.length > suffix.length) return rule.app;
      }
    }
    return undefined;
  }
}
