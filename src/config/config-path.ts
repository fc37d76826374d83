/** Formats a location inside the configuration document as `apps[1].oidc.issuer`. */

/** One step into the document: an object key or an array index. */
export type PathSegment = string | number;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * Formats path segments: identifier keys joined with `.`, array indexes as `[1]`, other keys
 * (header names, URLs) quoted as `["x-auth-request-user"]`. The empty path is `(root)`.
 */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === '' ? '(root)' : out;
}
