/** Reads `pages.templatesDir` into `pages.templates` when the config is loaded, each file checked. */
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';

import type { ConfigProblem } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import { cannotRead, type ReadTextFile } from './secret-files.ts';

/** The placeholders a page template may use; each is replaced by its HTML-escaped value. */
export const pagePlaceholders = Object.freeze([
  'title',
  'message',
  'requestId',
  'retryAfter',
  'logoutUrl',
  'retryUrl',
] as const);

export type PagePlaceholder = (typeof pagePlaceholders)[number];

/** `{{name}}` in a template. */
export const placeholderPattern = /\{\{\s*([^{}\s]*)\s*\}\}/g;

/** A template's file name: a status (`403.html`) or `error.html` for every other status. */
export const pageTemplateName = /^(?:[1-5]\d\d|error)\.html$/;

/** The largest template accepted, in bytes: a page, not a site. */
export const MAX_TEMPLATE_BYTES = 65_536;

const known: ReadonlySet<string> = new Set(pagePlaceholders);

/** What is wrong with a template (an unknown placeholder, its size), or undefined. */
export function templateProblem(text: string): string | undefined {
  if (Buffer.byteLength(text) > MAX_TEMPLATE_BYTES) {
    return `larger than ${MAX_TEMPLATE_BYTES} bytes`;
  }
  for (const [, name = ''] of text.matchAll(placeholderPattern)) {
    if (!known.has(name)) {
      return `unknown placeholder {{${name.slice(0, 40)}}} (known: ${pagePlaceholders.join(', ')})`;
    }
  }
  return undefined;
}

/** Lists a directory's entries; a seam for tests. */
export type ReadDirectory = (path: string) => readonly string[];

const readDirectory: ReadDirectory = (path) => readdirSync(path);

export interface PageTemplateFiles {
  readonly problems: ConfigProblem[];
  /** Absolute paths of the templates read: a change to one is a reason to reload. */
  readonly files: string[];
}

/**
 * Replaces `pages.templatesDir` in `doc` by `pages.templates` (file name → text), read from the
 * directory (relative to `baseDir`). Every problem names the file: unreadable, an unknown
 * placeholder, too large; a directory without one template is a problem too.
 */
export function resolvePageTemplates(
  doc: Record<string, unknown>,
  baseDir: string,
  readFile: ReadTextFile,
  readDir: ReadDirectory = readDirectory,
): PageTemplateFiles {
  const result: PageTemplateFiles = { problems: [], files: [] };
  const pages = doc['pages'];
  if (!isRecord(pages) || typeof pages['templatesDir'] !== 'string') return result;
  const path = 'pages.templatesDir';
  if (pages['templates'] !== undefined) {
    result.problems.push({ path, message: 'set templates or templatesDir, not both' });
    return result;
  }
  const dir = resolve(baseDir, pages['templatesDir']);
  let names: readonly string[];
  try {
    names = readDir(dir);
  } catch (error) {
    result.problems.push({ path, message: cannotRead(dir, error) });
    return result;
  }
  const templates: Record<string, string> = {};
  for (const name of [...names].filter((n) => pageTemplateName.test(n)).sort()) {
    const file = resolve(dir, name);
    let text: string;
    try {
      text = readFile(file);
    } catch (error) {
      result.problems.push({ path, message: cannotRead(file, error) });
      continue;
    }
    const problem = templateProblem(text);
    if (problem !== undefined) result.problems.push({ path, message: `${file}: ${problem}` });
    else templates[name] = text;
    result.files.push(file);
  }
  if (result.problems.length === 0 && Object.keys(templates).length === 0) {
    result.problems.push({
      path,
      message: `${dir} holds no template (403.html, 503.html, error.html, …)`,
    });
  }
  doc['pages'] = { ...pages, templates };
  return result;
}
