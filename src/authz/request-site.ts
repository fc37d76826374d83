/** Where a browser says a request comes from (Fetch Metadata, `Origin`): this origin, another site, or unknown. */
import type { RequestModel } from './request.ts';
import { originOf } from './request-urls.ts';

/**
 * - `same-origin`: `Sec-Fetch-Site: same-origin`, or `none` (the user typed the URL or chose a
 *   bookmark); without fetch metadata, an `Origin` equal to this request's origin.
 * - `cross-origin`: any other `Sec-Fetch-Site` (`cross-site`, and `same-site`, which is another
 *   origin of the same site: a sibling subdomain can be an attacker's), or an `Origin` that is
 *   not this one (`null` included).
 * - `unknown`: neither header, as from browsers before Fetch Metadata and from curl.
 */
export type RequestSite = 'same-origin' | 'cross-origin' | 'unknown';

/**
 * Reads the site a request comes from. `Sec-Fetch-Site` wins when present: browsers set it on
 * every request and a page cannot forge it (a forbidden header name, Fetch §2.2.2), and it does
 * not depend on how the scheme and port reached us through proxies. Envoy joins repeated
 * headers with `,`, so a doubled value is not one of the trusted values and counts as
 * cross-origin.
 */
export function requestSite(request: RequestModel): RequestSite {
  const site = request.headers.get('sec-fetch-site');
  if (site !== undefined) {
    const value = site.trim().toLowerCase();
    return value === 'same-origin' || value === 'none' ? 'same-origin' : 'cross-origin';
  }
  const origin = request.headers.get('origin');
  if (origin === undefined) return 'unknown';
  const claimed = URL.parse(origin.trim());
  const own = URL.parse(originOf(request));
  // URL normalises default ports and case, so `https://a.example:443` equals `https://a.example`.
  return claimed !== null && own !== null && claimed.origin === own.origin
    ? 'same-origin'
    : 'cross-origin';
}
