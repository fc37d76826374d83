/** Small HTML pages for people who land on an error in the login flow; nothing echoed unescaped. */
import { localReply, type ReplyReason, type HeaderPair, type Verdict } from './verdict.ts';

const entities: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => entities[c] ?? c);
}

/**
 * Every page may not be framed (no clickjacking of a page on our origin) and loads nothing: it
 * has no script, style or image of its own.
 */
const pageSecurityHeaders: readonly HeaderPair[] = Object.freeze([
  ['x-frame-options', 'DENY'],
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"],
] as const);

/** A readable page with a link to start again; `message` is escaped and capped. */
export function htmlPage(
  reason: ReplyReason,
  status: number,
  title: string,
  message: string,
  headers: readonly HeaderPair[] = [],
): Verdict {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message.slice(0, 500))}</p>
<p><a href="/">Start again</a></p></body></html>
`;
  return localReply(reason, status, body, [
    ['content-type', 'text/html; charset=utf-8'],
    ['cache-control', 'no-store'],
    ...pageSecurityHeaders,
    ...headers,
  ]);
}
