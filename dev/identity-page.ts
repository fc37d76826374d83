/** The demo's upstream: an HTML page listing the identity headers the request arrived with. */
import { escapeHtml } from '../src/authz/pages.ts';
import type { UpstreamRequest } from './envoy-client.ts';
import type { UpstreamHandler, UpstreamResponse } from './dev-gateway.ts';

export interface IdentityPageOptions {
  /** Header names shown as the identity, e.g. the app's `upstreamHeaders` keys. */
  readonly identityHeaders: readonly string[];
  /** The app's `oidc.logoutPath`. Default `/oauth2/logout`. */
  readonly logoutPath?: string;
  /** Where "sign in" points (a protected path). Default `/`. */
  readonly signInPath?: string;
}

function rows(entries: ReadonlyArray<readonly [string, string]>): string {
  return entries
    .map(
      ([name, value]) =>
        `<tr><th scope="row"><code>${escapeHtml(name)}</code></th><td>${escapeHtml(value)}</td></tr>`,
    )
    .join('\n');
}

/**
 * Cookie and authorization values stay off the page: on loopback the provider's cookies reach
 * this port too (cookies ignore ports), and a page is easily screenshotted or shared.
 */
function withoutCredentials(name: string, value: string): string {
  if (name === 'cookie') {
    const cookieNames = value.split(/;\s*/).map((pair) => pair.split('=')[0] ?? '');
    return `${cookieNames.join(', ')} (values hidden)`;
  }
  if (name === 'authorization' || name === 'proxy-authorization') return '(hidden)';
  return value;
}

const style = `body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1d2330}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #dde;vertical-align:top}
th{width:1%;white-space:nowrap;font-weight:500}td{word-break:break-all}code{font-size:.9em}
a.button{display:inline-block;margin-top:1.5rem;padding:.5rem 1rem;border-radius:.4rem;background:#2456d3;color:#fff;text-decoration:none}
details{margin-top:2rem;color:#556}`;

/**
 * Renders the page for one forwarded request: the identity headers it carries (every value
 * escaped: they come from the provider's claims), a logout link when there is an identity, a
 * sign-in link when there is none, and every other header received.
 */
export function renderIdentityPage(
  request: UpstreamRequest,
  options: IdentityPageOptions,
): UpstreamResponse {
  const names = new Set(options.identityHeaders.map((name) => name.toLowerCase()));
  const identity = [...request.headers].filter(([name]) => names.has(name));
  const others = [...request.headers]
    .filter(([name]) => !names.has(name))
    .map(([name, value]) => [name, withoutCredentials(name, value)] as const);
  const signedIn = identity.length > 0;
  const heading = signedIn ? 'You are signed in' : 'You are not signed in';
  const main = signedIn
    ? `<p>The gateway checked this request with the authorization server, which added these identity headers:</p>
<table id="identity">
${rows(identity)}
</table>
<a class="button" id="logout" href="${escapeHtml(options.logoutPath ?? '/oauth2/logout')}">Log out</a>`
    : `<p>This page is public: the request carried no identity headers.</p>
<a class="button" id="sign-in" href="${escapeHtml(options.signInPath ?? '/')}">Sign in</a>`;
  const body = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${heading} · envoy-oidc-authz demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${style}</style></head>
<body>
<h1>${heading}</h1>
<p><code>${escapeHtml(request.method)} ${escapeHtml(request.path)}</code></p>
${main}
<details><summary>Every header the upstream received</summary>
<table id="headers">
${rows(others)}
</table></details>
</body>
</html>
`;
  return {
    status: 200,
    headers: [
      ['content-type', 'text/html; charset=utf-8'],
      ['cache-control', 'no-store'],
      // The page shows what it is given and runs nothing: no scripts, no framing.
      ['content-security-policy', "default-src 'none'; style-src 'unsafe-inline'"],
      ['x-frame-options', 'DENY'],
    ],
    body,
  };
}

/** An upstream that answers every path with {@link renderIdentityPage} (404 for `/favicon.ico`). */
export function createIdentityUpstream(options: IdentityPageOptions): UpstreamHandler {
  return (request) => {
    if (request.path === '/favicon.ico') {
      return { status: 404, headers: [['content-type', 'text/plain']], body: 'not found\n' };
    }
    return renderIdentityPage(request, options);
  };
}
