/**
 * The request policy: the one place that reads a request's path and host and chooses its app.
 * Every consumer (app selection, public paths, bearer scope rules, claim rules, the app's own
 * endpoints) decides on the {@link RequestPath} it hands out, never on a reading of its own.
 */
import { AppSelection, ambiguousApp, type Matchable } from './app-selection.ts';
import { refusals, type PolicyRefusal } from './policy-refusal.ts';
import { readRequestPath, type RequestPath } from './request-path.ts';

/** What the policy reads of a request (the pipeline's request model has these and more). */
export interface PolicyRequest {
  readonly host: string;
  /** Raw path without the query string, not decoded. */
  readonly path: string;
  readonly contextExtensions: ReadonlyMap<string, string>;
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
  readonly #selection: AppSelection<T>;

  constructor(apps: readonly T[]) {
    this.#selection = new AppSelection(apps);
  }

  /**
   * The readings of the request's path, or why there are none to decide on (a 400). Called
   * once per request; every consumer decides on what it returns.
   */
  readPath(request: PolicyRequest): RequestPath | PolicyRefusal {
    return readRequestPath(request.path);
  }

  /**
   * The app for the request: `undefined` when none matches, a refusal when the readings of its
   * path choose different apps. Two calls rather than one result object: this runs on every
   * request, and neither call allocates for a plain path.
   */
  selectApp(request: PolicyRequest, path: RequestPath): T | undefined | PolicyRefusal {
    const app = this.#selection.select(request.host, path, request.contextExtensions);
    return app === ambiguousApp ? refusals['ambiguous path'] : app;
  }
}
