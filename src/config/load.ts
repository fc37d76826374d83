/** Loads a configuration: parse, interpolate, read secret files, merge defaults, validate, freeze. */

import { dirname, extname } from 'node:path';

import { LineCounter, parseDocument } from 'yaml';

import { formatPath, type PathSegment } from './config-path.ts';
import { checkCookieScopes } from './cookie-scopes.ts';
import { checkAcrossApps, checkAppRules, checkRootRules } from './cross-field-rules.ts';
import { interpolate, type Environment } from './interpolate.ts';
import { resolvePageTemplates } from './page-templates.ts';
import { cannotRead, readTextFile, resolveSecretFiles, type ReadTextFile } from './secret-files.ts';
import { describeIssue, issuesToProblems, type LocatedProblem } from './schema-problems.ts';
import { applyProviderProfile } from './provider-profiles.ts';
import { configSchema, resolvedAppSchema, type AppConfig, type Config } from './schema.ts';
import type { ConfigProblem } from '../errors.ts';
import { isRecord } from '../is-record.ts';

/**
 * Where the configuration comes from: a file (YAML or JSON by extension, else sniffed), text in
 * a known format, or an already-parsed document (for tests and embedding).
 */
export type ConfigSource =
  | { readonly path: string }
  | { readonly text: string; readonly format: 'yaml' | 'json' }
  | { readonly document: unknown };

export type LoadResult =
  | {
      readonly ok: true;
      readonly config: Config;
      /** Absolute paths of the `…File` secrets read: a change to one is a reason to reload. */
      readonly files?: readonly string[];
    }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/** Seams for tests; production uses the defaults. */
export interface LoadOptions {
  /** Reads the config file and secret files. Default: `fs.readFileSync(path, 'utf8')`. */
  readonly readFile?: ReadTextFile;
}

const rootSchema = configSchema.omit({ apps: true, defaults: true });

/**
 * Loads and validates a configuration, reporting every problem at once.
 *
 * Order: parse → `${VAR}` interpolation from `env` → `…File` secrets → `defaults` deep-merged
 * under each app (the app wins; arrays replace) → schema (defaults filled, durations to ms) →
 * cross-field rules. Each problem names its path (`apps[1].oidc.issuer`); a mistake inside
 * `defaults` is reported once at `defaults.…`, not once per app. One mistake is reported once:
 * a secret whose file could not be read is not reported again as missing. On success the
 * config is deep-frozen.
 */
export function loadConfig(
  source: ConfigSource,
  env: Environment,
  options: LoadOptions = {},
): LoadResult {
  const readFile = options.readFile ?? readTextFile;
  const parsed = parseSource(source, readFile);
  if (!parsed.ok) return parsed;
  // Relative `…File` paths: from the config file's directory, else the working directory.
  const baseDir = 'path' in source ? dirname(source.path) : process.cwd();
  return resolveDocument(parsed.document, env, baseDir, readFile);
}

type ParseResult = { readonly ok: true; readonly document: unknown } | ReturnType<typeof fail>;

function parseSource(source: ConfigSource, readFile: ReadTextFile): ParseResult {
  if ('document' in source) return { ok: true, document: source.document };
  if ('text' in source) return parseText(source.text, source.format);
  let text: string;
  try {
    text = readFile(source.path);
  } catch (error) {
    return fail([{ path: formatPath([]), message: cannotRead(source.path, error) }]);
  }
  return parseText(text, detectFormat(source.path, text));
}

function detectFormat(path: string, text: string): 'yaml' | 'json' {
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  return text.trimStart().startsWith('{') ? 'json' : 'yaml';
}

function parseText(text: string, format: 'yaml' | 'json'): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    // YAML 1.2 core: `on`/`yes` stay strings. JSON text is parsed by the JSON schema.
    schema: format === 'json' ? 'json' : 'core',
    uniqueKeys: true,
  });
  if (doc.errors.length > 0) {
    return fail(
      doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        // Only the first line: later lines of a parser message may quote the source (a secret).
        const reason = error.message.split('\n')[0] ?? error.code;
        return {
          path: formatPath([]),
          message: `invalid ${format.toUpperCase()} at line ${line}, column ${col}: ${reason}`,
        };
      }),
    );
  }
  try {
    // Bounded alias expansion: a "billion laughs" document is a problem, not an outage.
    return { ok: true, document: doc.toJS({ maxAliasCount: 100 }) };
  } catch {
    return fail([
      { path: formatPath([]), message: `invalid ${format.toUpperCase()}: too many aliases` },
    ]);
  }
}

function resolveDocument(
  document: unknown,
  env: Environment,
  baseDir: string,
  readFile: ReadTextFile,
): LoadResult {
  if (!isRecord(document)) return fail([{ path: formatPath([]), message: 'must be a mapping' }]);
  const problems = new ProblemList();

  const interpolated = interpolate(document, env);
  problems.addSettled(interpolated.problems);
  const doc = interpolated.value as Record<string, unknown>;

  const secrets = resolveSecretFiles(doc, baseDir, readFile);
  problems.addSettled(secrets.problems, secrets.failedPaths);
  const pageFiles = resolvePageTemplates(doc, baseDir, readFile);
  problems.addSettled(pageFiles.problems, ['pages.templates']);

  const { apps: rawApps, defaults: rawDefaults, ...rawRoot } = doc;

  const root = rootSchema.safeParse(rawRoot, { error: describeIssue });
  if (root.success) problems.add(...checkRootRules(root.data));
  else problems.addLocated([], issuesToProblems(root.error.issues));

  let defaults: Record<string, unknown> = {};
  if (rawDefaults !== undefined) {
    if (!isRecord(rawDefaults)) problems.add({ path: 'defaults', message: 'must be a mapping' });
    else {
      const { name, ...rest } = rawDefaults;
      if (name !== undefined) {
        problems.add({
          path: 'defaults.name',
          message: 'cannot be set in defaults (each app names itself)',
        });
      }
      defaults = rest;
    }
  }

  const apps: (AppConfig | undefined)[] = [];
  if (!Array.isArray(rawApps) || rawApps.length === 0) {
    const shape = configSchema.shape.apps.safeParse(rawApps, { error: describeIssue });
    if (!shape.success) problems.addLocated(['apps'], issuesToProblems(shape.error.issues));
  } else {
    rawApps.forEach((rawApp: unknown, i) => {
      apps.push(validateApp(rawApp, i, defaults, problems));
    });
    problems.add(
      ...checkAcrossApps(
        rawApps.map((app: unknown) => (isRecord(app) ? app['name'] : undefined)),
        apps,
      ),
    );
    problems.add(...checkCookieScopes(apps));
  }

  const found = problems.list();
  if (found.length > 0 || !root.success) return fail(found);
  const config: Config = { ...root.data, apps: apps.filter((app) => app !== undefined) };
  return {
    ok: true,
    config: deepFreeze(config),
    files: [...secrets.files, ...pageFiles.files],
  };
}

function validateApp(
  rawApp: unknown,
  index: number,
  defaults: Record<string, unknown>,
  problems: ProblemList,
): AppConfig | undefined {
  const appPath: PathSegment[] = ['apps', index];
  if (!isRecord(rawApp)) {
    problems.add({ path: formatPath(appPath), message: 'must be a mapping' });
    return undefined;
  }
  // A problem in a value that came from `defaults` is reported at `defaults.…`, once.
  const locate = (found: readonly LocatedProblem[]) => {
    for (const problem of found) {
      const fromDefaults = !hasPath(rawApp, problem.path) && hasPath(defaults, problem.path);
      problems.addLocated(fromDefaults ? ['defaults'] : appPath, [problem]);
    }
  };
  const result = resolvedAppSchema.safeParse(applyProviderProfile(deepMerge(defaults, rawApp)), {
    error: describeIssue,
  });
  if (!result.success) {
    locate(issuesToProblems(result.error.issues));
    return undefined;
  }
  const ruleProblems = checkAppRules(result.data);
  locate(ruleProblems);
  return ruleProblems.length === 0 ? result.data : undefined;
}

/**
 * Collects problems in order, drops repeats, and drops problems at or under a path that has
 * already been reported (so an unset `${VAR}` is not reported again as "must not be empty").
 */
class ProblemList {
  readonly #problems: ConfigProblem[] = [];
  readonly #seen = new Set<string>();
  readonly #settled: string[] = [];

  /** Adds problems and marks their paths (and `extraPaths`) as settled. */
  addSettled(problems: readonly ConfigProblem[], extraPaths: readonly string[] = []): void {
    this.add(...problems);
    this.#settled.push(...problems.map((p) => p.path), ...extraPaths);
  }

  addLocated(prefix: readonly PathSegment[], problems: readonly LocatedProblem[]): void {
    for (const p of problems)
      this.add({ path: formatPath([...prefix, ...p.path]), message: p.message });
  }

  add(...problems: readonly ConfigProblem[]): void {
    for (const problem of problems) {
      const key = `${problem.path}\n${problem.message}`;
      if (this.#seen.has(key) || this.#isSettled(problem.path)) continue;
      this.#seen.add(key);
      this.#problems.push(problem);
    }
  }

  list(): readonly ConfigProblem[] {
    return [...this.#problems];
  }

  #isSettled(path: string): boolean {
    return this.#settled.some(
      (settled) =>
        path === settled || path.startsWith(`${settled}.`) || path.startsWith(`${settled}[`),
    );
  }
}

/** `base` under `override`: objects merge key by key, anything else (arrays too) is replaced. */
function deepMerge(base: unknown, override: unknown): unknown {
  if (!isRecord(base) || !isRecord(override)) return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = deepMerge(base[key], value);
  return out;
}

function hasPath(root: unknown, path: readonly PathSegment[]): boolean {
  let node = root;
  for (const segment of path) {
    if (typeof segment === 'number') {
      if (!Array.isArray(node) || segment >= node.length) return false;
      node = node[segment] as unknown;
    } else {
      if (!isRecord(node) || !Object.hasOwn(node, segment)) return false;
      node = node[segment];
    }
  }
  return true;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function fail(problems: readonly ConfigProblem[]): Extract<LoadResult, { ok: false }> {
  return { ok: false, problems };
}
