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

/**
 * Longest return target kept, in UTF-8 bytes. It travels in the login-state cookie, which must
 * stay under the 4,096 bytes browsers keep per cookie (RFC 6265 §6.1): a longer target would
 * make the browser drop the cookie and the login fail at the callback.
 */
const maxReturnPathBytes = 2048;

/**
 * What to return to after login: the original path and query, always origin-relative. A target
 * over {@link maxReturnPathBytes} loses its query, then falls back to `/`.
 */
export function returnPathOf(request: RequestModel): string {
  const full = request.query === '' ? request.path : `${request.path}?${request.query}`;
  if (Buffer.byteLength(full) <= maxReturnPathBytes) return full;
  return Buffer.byteLength(request.path) <= maxReturnPathBytes ? request.path : '/';
}

// RFC 3986 pchar plus `/` and `?`, and `%` so existing escapes are kept as sent. Everything else
// (`\`, space, quotes, `<>`, controls, non-ASCII, lone surrogates) is percent-encoded as UTF-8.
const notInTarget = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/gu;

function escapeByte(character: string): string {
  let escaped = '';
  for (const byte of Buffer.from(character, 'utf8'))
    escaped += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return escaped;
}

/**
 * The absolute URL to send the browser back to. The target is only ever a path on this
 * request's own origin: `//evil.example/x` or `/\evil.example` become paths under the origin,
 * never a host, so the login can never become an open redirect. The path is written in
 * printable ASCII only: a `\` or a look-alike slash (U+2215, U+FF0F) reaches no browser or
 * proxy for it to reinterpret, and no CR/LF or non-Latin-1 character reaches the header.
 */
export function sameOriginUrl(request: RequestModel, returnPath: string): string {
  const path = returnPath.startsWith('/') ? returnPath : '/';
  return originOf(request) + path.replace(notInTarget, escapeByte);
}
