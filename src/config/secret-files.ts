/** `…File` twins: secrets read from files (Kubernetes Secret mounts) at load, in place of inline values. */

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

import { formatPath, type PathSegment } from './config-path.ts';
import type { ConfigProblem } from '../errors.ts';
import { isRecord } from '../is-record.ts';

/** Reads a file as UTF-8; injected so tests can fail it on purpose. */
export type ReadTextFile = (path: string) => string;

/** The production {@link ReadTextFile}. */
export const readTextFile: ReadTextFile = (path) => readFileSync(path, 'utf8');

/** The problem of a file that could not be read: its path and the system's code, never content. */
export function cannotRead(path: string, error: unknown): string {
  const hasCode = typeof error === 'object' && error !== null && 'code' in error;
  return `cannot read ${path}: ${hasCode ? String(error.code) : 'unreadable'}`;
}

/** Where a secret sits (the parent object's path) and the name of its inline key. */
interface SecretSlot {
  readonly parent: readonly string[];
  readonly key: string;
  /** `list`: the file holds one secret per line and fills an array. */
  readonly shape: 'single' | 'list';
}

/** Secrets of an app (also allowed in `defaults`). */
const APP_SECRETS: readonly SecretSlot[] = [
  { parent: ['oidc'], key: 'clientSecret', shape: 'single' },
  { parent: ['oidc'], key: 'privateKey', shape: 'single' },
  { parent: ['bearer', 'introspection'], key: 'clientSecret', shape: 'single' },
  { parent: ['session'], key: 'secrets', shape: 'list' },
  { parent: ['upstreamAssertion'], key: 'signingKey', shape: 'single' },
];

/** Secrets at the top level of the document. */
const ROOT_SECRETS: readonly SecretSlot[] = [
  { parent: ['store', 'redis'], key: 'password', shape: 'single' },
  { parent: ['store', 'redis'], key: 'sentinelPassword', shape: 'single' },
  { parent: ['store', 'redis', 'tls'], key: 'ca', shape: 'single' },
  { parent: ['store', 'redis', 'tls'], key: 'cert', shape: 'single' },
  { parent: ['store', 'redis', 'tls'], key: 'key', shape: 'single' },
  { parent: ['listen', 'tls'], key: 'cert', shape: 'single' },
  { parent: ['listen', 'tls'], key: 'key', shape: 'single' },
  { parent: ['listen', 'tls'], key: 'clientCa', shape: 'single' },
];

/** Secret files larger than this are refused: no secret is a megabyte long. */
const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/** What resolving the twins found. */
export interface SecretFileResult {
  readonly problems: ConfigProblem[];
  /**
   * Paths of secrets whose twin failed (both given, unreadable). Later checks skip these paths so
   * one mistake is reported once, not again as "missing secret".
   */
  readonly failedPaths: string[];
  /** Absolute paths of the files read, to watch for a rotation. */
  readonly files: string[];
}

/**
 * Replaces every `<name>File` key with `<name>` holding the file's content, in place.
 *
 * The twins are those of {@link APP_SECRETS} (in every app and in `defaults`) and
 * {@link ROOT_SECRETS}. `session.secretsFile` holds one secret per line (blank lines ignored;
 * the first line is the current secret). A single-secret file has its trailing newlines
 * removed. Relative paths are resolved against `baseDir` (the config file's directory). Giving
 * both `<name>` and `<name>File` is a problem, and so is an unreadable file: the message names
 * the file path, never its content.
 *
 * `document` must be a plain-object tree owned by the caller (it is modified).
 */
export function resolveSecretFiles(
  document: Record<string, unknown>,
  baseDir: string,
  readFile: ReadTextFile = readTextFile,
): SecretFileResult {
  const result: SecretFileResult = { problems: [], failedPaths: [], files: [] };
  const visit = (root: unknown, rootPath: readonly PathSegment[], slots: readonly SecretSlot[]) => {
    for (const slot of slots) resolveSlot(root, rootPath, slot, baseDir, readFile, result);
  };
  visit(document, [], ROOT_SECRETS);
  visit(document['defaults'], ['defaults'], APP_SECRETS);
  const apps = document['apps'];
  if (Array.isArray(apps)) apps.forEach((app, i) => visit(app, ['apps', i], APP_SECRETS));
  return result;
}

function resolveSlot(
  root: unknown,
  rootPath: readonly PathSegment[],
  slot: SecretSlot,
  baseDir: string,
  readFile: ReadTextFile,
  result: SecretFileResult,
): void {
  let parent = root;
  for (const key of slot.parent) parent = isRecord(parent) ? parent[key] : undefined;
  if (!isRecord(parent)) return;
  const fileKey = `${slot.key}File`;
  if (!Object.hasOwn(parent, fileKey)) return;
  const filePath = parent[fileKey];
  const inlinePath = formatPath([...rootPath, ...slot.parent, slot.key]);
  const twinPath = formatPath([...rootPath, ...slot.parent, fileKey]);
  // Left as an empty value on failure so the schema and later rules see the key as given.
  const failed = (message: string) => {
    result.problems.push({ path: twinPath, message });
    result.failedPaths.push(inlinePath, twinPath);
    delete parent[fileKey];
    parent[slot.key] = slot.shape === 'list' ? [] : '';
  };
  if (Object.hasOwn(parent, slot.key))
    return failed(`cannot be combined with ${slot.key}: give one of them`);
  if (typeof filePath !== 'string' || filePath === '') return failed('must be a file path');
  const absolute = isAbsolute(filePath) ? filePath : resolve(baseDir, filePath);
  let content: string;
  try {
    content = readFile(absolute);
  } catch (error) {
    return failed(cannotRead(absolute, error));
  }
  if (Buffer.byteLength(content) > MAX_SECRET_FILE_BYTES)
    return failed(`${absolute} is larger than 1 MiB`);
  result.files.push(absolute);
  delete parent[fileKey];
  parent[slot.key] =
    slot.shape === 'list'
      ? content
          .split('\n')
          .map((line) => line.replace(/\r$/, ''))
          .filter((line) => line.trim() !== '')
      : content.replace(/(?:\r?\n)+$/, '');
}
