/** `${VAR}` interpolation of environment variables into every string of a parsed config document. */

import { formatPath, type PathSegment } from './config-path.ts';
import type { ConfigProblem } from '../errors.ts';

/** The environment to read variables from; injected so that tests and reloads control it. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** The interpolated document, the problems found, and where each problem is. */
export interface InterpolationResult {
  readonly value: unknown;
  readonly problems: readonly ConfigProblem[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${VAR}` in every string value (not keys) of `document` with `env[VAR]`.
 *
 * - `${VAR:-fallback}` uses `fallback` when `VAR` is unset or empty (as a POSIX shell does).
 * - `$${` stands for a literal `${`.
 * - An unset variable without a fallback is a problem at the string's path, never a silent empty
 *   string; so is a malformed reference. The problem names the variable, never its value.
 *
 * Interpolated values stay strings: `${PORT}` does not become a number.
 */
export function interpolate(document: unknown, env: Environment): InterpolationResult {
  const problems: ConfigProblem[] = [];
  const value = walk(document, [], env, problems);
  return { value, problems };
}

function walk(
  node: unknown,
  path: PathSegment[],
  env: Environment,
  problems: ConfigProblem[],
): unknown {
  if (typeof node === 'string')
    return node.includes('$') ? substitute(node, path, env, problems) : node;
  if (Array.isArray(node)) return node.map((item, i) => walk(item, [...path, i], env, problems));
  if (typeof node === 'object' && node !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(node)) {
      out[key] = walk(child, [...path, key], env, problems);
    }
    return out;
  }
  return node;
}

function substitute(
  text: string,
  path: readonly PathSegment[],
  env: Environment,
  problems: ConfigProblem[],
): string {
  const report = (message: string) => problems.push({ path: formatPath(path), message });
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      out += text[i];
      i += 1;
      continue;
    }
    const close = text.indexOf('}', i + 2);
    if (close === -1) {
      report('has an unclosed "${" (write "$${" for a literal)');
      return out;
    }
    const body = text.slice(i + 2, close);
    const sep = body.indexOf(':-');
    const name = sep === -1 ? body : body.slice(0, sep);
    if (!NAME.test(name)) {
      // The reference text is not echoed: it may sit inside a literal secret.
      report('has an invalid "${…}" reference (write "$${" for a literal)');
    } else {
      const found = env[name];
      if (sep !== -1) out += found === undefined || found === '' ? body.slice(sep + 2) : found;
      else if (found !== undefined) out += found;
      else report(`environment variable ${name} is not set`);
    }
    i = close + 1;
  }
  return out;
}
