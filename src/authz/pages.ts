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
 * A page around `content` (HTML, escaped by the caller). Every page may not be framed (no
 * clickjacking of a page on our origin) and loads nothing: it has no script, style or image of
 * its own.
 */
export function htmlReply(
  reason: ReplyReason,
  status: number,
  title: string,
  content: string,
  headers: readonly HeaderPair[] = [],
  csp = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
  head = '',
): Verdict {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">${head}<title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>${content}</body></html>
`;
  return localReply(reason, status, body, [
    ['content-type', 'text/html; charset=utf-8'],
    ['cache-control', 'no-store'],
    ['x-frame-options', 'DENY'],
    ['content-security-policy', csp],
    ...headers,
  ]);
}

/** A readable page with a link to start again; `message` is escaped and capped. */
export function htmlPage(
  reason: ReplyReason,
  status: number,
  title: string,
  message: string,
  headers: readonly HeaderPair[],
): Verdict {
  const content = `<p>${escapeHtml(message.slice(0, 500))}</p>\n<p><a href="/">Start again</a></p>`;
  return htmlReply(reason, status, title, content, headers);
}

/**
 * A page that reloads itself after `retryAfterSeconds` (and says so in `Retry-After`): for a
 * browser whose request could not be answered yet but will be shortly, so that a person does
 * not have to. `message` is escaped.
 */
export function retryPage(
  reason: ReplyReason,
  status: number,
  retryAfterSeconds: number,
  title: string,
  message: string,
  headers: readonly HeaderPair[] = [],
): Verdict {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  return htmlReply(
    reason,
    status,
    title,
    `<p>${escapeHtml(message.slice(0, 500))}</p>`,
    [['retry-after', String(seconds)], ...headers],
    undefined,
    `<meta http-equiv="refresh" content="${seconds}">`,
  );
}
