/** URLs derived from the request: its origin, the callback URI, and same-origin return targets. */
import type { RequestModel } from './request.ts';

/** `scheme://host[:port]` of the request, as the browser sees it. */
export function originOf(request: RequestModel): string {
  return `${request.scheme}://${request.host}${request.port === undefined ? '' : `:${request.port}`}`;
}

/** The redirect URI registered at the provider: this origin plus the app's callback path. */
export function redirectUriFor(request: RequestModel, callbackPath: string): string {
  return originOf(request) + callbackPath;
}

/** What to return to after login: the original path and query, always origin-relative. */
export function returnPathOf(request: RequestModel): string {
  return request.query === '' ? request.path : `${request.path}?${request.query}`;
}

/**
 * The absolute URL to send the browser back to. The target is only ever a path on this
 * request's own origin: `//evil.example/x` or `/\evil.example` become paths under the origin,
 * never a host, so the login can never become an open redirect.
 */
export function sameOriginUrl(request: RequestModel, returnPath: string): string {
  const path = returnPath.startsWith('/') ? returnPath : '/';
  return originOf(request) + path;
}
