/**
 * The request policy: the one place that reads a request's path and host and chooses its app.
 * Every consumer (app selection, public paths, bearer scope rules, claim rules, the app's own
 * endpoints) decides on the {@link RequestPath} it hands out, never on a reading of its own.
 */
import type { RequestModel } from '../authz/request.ts';
import { AppSelection, ambiguousApp, type Matchable } from './app-selection.ts';
import { refusals, type PolicyRefusal } from './policy-refusal.ts';
import { readRequestPath, type RequestPath } from './request-path.ts';

/** What the policy says of one request before any app-specific step runs. */
export type PolicyResult<T> =
  | { readonly kind: 'app'; readonly app: T; readonly path: RequestPath }
  | { readonly kind: 'unmatched'; readonly path: RequestPath }
  | PolicyRefusal;

/**
 * Built once per config. A request whose path cannot be read ({@link readRequestPath}) or whose
 * readings choose different apps is refused with 400 `ambiguous path`.
 *
 * Why refuse rather than take the strictest reading: the strictest reading here is not the
 * reading of every upstream. Choosing the `/admin/` app for `/admin;x/y` still forwards the raw
 * path to whatever Envoy routes it to, and a catch-all route's server may read it as the laxer
 * app's path; taking the laxer app is a bypass on servlet containers. A 400 is safe on every
 * server, and no browser or honest client sends such a path.
 */
export class RequestPolicy<T extends Matchable> {
  readonly #selection: AppSelection<T>;

  constructor(apps: readonly T[]) {
    this.#selection = new AppSelection(apps);
  }

  resolve(request: RequestModel): PolicyResult<T> {
    const path = readRequestPath(request.path);
    if ('kind' in path) return path;
    const app = this.#selection.select(request.host, path, request.contextExtensions);
    if (app === ambiguousApp) return refusals['ambiguous path'];
    return app === undefined ? { kind: 'unmatched', path } : { kind: 'app', app, path };
  }
}
