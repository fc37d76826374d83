/**
 * The request headers the server reads, found in its source. In HTTP mode Envoy shows the
 * server only the headers its `allowed_headers` (Istio `includeRequestHeadersInCheck`) lists,
 * plus `authorization`, `host`, `method`, `path` and `content-length` (ENVOY.md §4): a header
 * the server reads but the shipped list leaves out silently turns a check off — a cross-site
 * logout looks like an old browser's without `sec-fetch-site` and `origin`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { repoPath } from './repo-path.ts';

/**
 * The response headers the server sets on a denial that the client must get (a redirect, its
 * cookies, RFC 6750's challenge, a throttle's wait, the confirmation page's framing guards):
 * HTTP mode passes on only those its list names (ENVOY.md §4).
 */
export const deniedClientHeaders: readonly string[] = [
  'location',
  'set-cookie',
  'www-authenticate',
  'retry-after',
  'x-frame-options',
  'content-security-policy',
];

/** What Envoy's HTTP mode sends whatever the list says. */
const alwaysSent = new Set(['authorization', 'host', 'content-length']);

/** Read in `src/server/http-server.ts` straight from the incoming request. */
const readByHttpServer = ['x-forwarded-proto', 'x-request-id'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

/** Every header name read with `headers.get('…')` or `headers.has('…')` in `src/`, sorted. */
export function requestHeadersRead(): string[] {
  const names = new Set(readByHttpServer);
  for (const file of sourceFiles(repoPath('src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/headers\.(?:get|has)\('([a-z0-9-]+)'\)/g))
      names.add(m[1] as string);
  }
  return [...names].filter((n) => !alwaysSent.has(n)).sort();
}
