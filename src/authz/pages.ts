/** Small HTML pages for people who land on an error in the login flow; nothing echoed unescaped. */
import { createHash } from 'node:crypto';

import { placeholderPattern, type PagePlaceholder } from '../config/page-templates.ts';

import {
  localReply,
  type LocalReply,
  type PageContent,
  type ReplyReason,
  type HeaderPair,
  type Verdict,
} from './verdict.ts';

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

/**
 * A readable login-flow page with a link to start again (at `retryUrl`, else `/`); the pipeline
 * renders it again with the request id. `message` is escaped and capped.
 */
export function htmlPage(
  reason: ReplyReason,
  status: number,
  title: string,
  message: string,
  headers: readonly HeaderPair[],
  retryUrl?: string,
): LocalReply {
  const page: PageContent =
    retryUrl === undefined
      ? { title, message, always: true }
      : { title, message, retryUrl, always: true };
  return { ...builtInPages.render(localReply(reason, status, '', headers), page, '', ''), page };
}

const pageStyle =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}h1{font-size:1.5rem}a{color:#0645ad}.ref{color:#555;font-size:.875rem}';
const pageStyleHash = createHash('sha256').update(pageStyle).digest('base64');
const builtInCsp = `default-src 'none'; style-src 'sha256-${pageStyleHash}'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`;
const operatorCsp =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

type PageFields = Readonly<Record<PagePlaceholder, string>>;

function builtInPage(fields: PageFields): string {
  const e = (name: PagePlaceholder) => escapeHtml(fields[name]);
  const refresh =
    fields.retryAfter === '' ? '' : `<meta http-equiv="refresh" content="${e('retryAfter')}">`;
  const parts = [`<p>${e('message')}</p>`];
  if (fields.retryAfter !== '') {
    parts.push(
      `<p>Please try again in ${e('retryAfter')} ${fields.retryAfter === '1' ? 'second' : 'seconds'}; this page reloads by itself.</p>`,
    );
  }
  if (fields.logoutUrl !== '') {
    parts.push(
      `<p>If you are signed in with the wrong account, <a href="${e('logoutUrl')}">sign out and switch account</a>.</p>`,
    );
  }
  if (fields.retryUrl !== '') parts.push(`<p><a href="${e('retryUrl')}">Start again</a></p>`);
  if (fields.requestId !== '') {
    parts.push(`<p class="ref">Reference: <code>${e('requestId')}</code></p>`);
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">${refresh}<title>${e('title')}</title><style>${pageStyle}</style></head>
<body><main><h1>${e('title')}</h1>
${parts.join('\n')}
</main></body></html>
`;
}

/** Every `{{name}}` of `template` replaced by its escaped value. */
export function fillTemplate(template: string, fields: PageFields): string {
  return template.replace(placeholderPattern, (_, name: string) =>
    escapeHtml(fields[name as PagePlaceholder] ?? ''),
  );
}

/**
 * The pages of refusals: the built-in page, or an operator's template for the status
 * (`403.html`) or for every status (`error.html`), read and checked when the config is loaded.
 */
export class PageTemplates {
  readonly #templates: ReadonlyMap<string, string>;

  /** `templates` by file name (`403.html`, `error.html`), checked when the config was loaded. */
  constructor(templates: Readonly<Record<string, string>> = {}) {
    this.#templates = new Map(Object.entries(templates));
  }

  /**
   * `reply` as the page `page` describes, for the request `requestId`; the switch-account link
   * goes to `logoutPath` (empty: none). Keeps the reply's status and its headers but its type.
   */
  render(reply: LocalReply, page: PageContent, requestId: string, logoutPath: string): LocalReply {
    const retryAfter = reply.headers.find(([name]) => name === 'retry-after')?.[1] ?? '';
    const fields: PageFields = {
      title: page.title,
      message: page.message.slice(0, 500),
      requestId: requestId.slice(0, 200),
      retryAfter: reply.status === 503 ? retryAfter : '',
      logoutUrl: page.switchAccount === true ? logoutPath : '',
      retryUrl: page.always === true ? (page.retryUrl ?? '/') : (page.retryUrl ?? ''),
    };
    const template =
      this.#templates.get(`${reply.status}.html`) ?? this.#templates.get('error.html');
    const body = template === undefined ? builtInPage(fields) : fillTemplate(template, fields);
    const kept = reply.headers.filter(([name]) => name !== 'content-type');
    return {
      ...localReply(reply.reason, reply.status, body, [
        ['content-type', 'text/html; charset=utf-8'],
        ['cache-control', 'no-store'],
        ['x-frame-options', 'DENY'],
        ['content-security-policy', template === undefined ? builtInCsp : operatorCsp],
        ...kept.filter(([name]) => !htmlHeaderNames.has(name)),
      ]),
    };
  }
}

const htmlHeaderNames = new Set(['cache-control', 'x-frame-options', 'content-security-policy']);

/** The built-in pages, for a reply rendered before any config (tests, the login flow's first render). */
export const builtInPages = new PageTemplates();

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
