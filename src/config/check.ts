/** `check-config`: validates a configuration file and formats the outcome for a terminal. */

import type { Environment } from './interpolate.ts';
import { loadConfig, type LoadOptions } from './load.ts';
import type { AppConfig } from './schema.ts';

/** The outcome of a check: `output` is ready to print, one line per problem. */
export interface CheckResult {
  readonly ok: boolean;
  readonly output: string;
}

/**
 * Loads the configuration at `path` with `env` and reports every problem as `path: message`,
 * one per line, or `config OK: N apps` (`1 app`) when it is valid, followed by one line per
 * API-only app saying what it accepts. The caller prints `output` and exits non-zero when `ok`
 * is false.
 */
export function checkConfigFile(
  path: string,
  env: Environment,
  options: LoadOptions = {},
): CheckResult {
  const result = loadConfig({ path }, env, options);
  if (!result.ok) {
    return {
      ok: false,
      output: result.problems.map((problem) => `${problem.path}: ${problem.message}`).join('\n'),
    };
  }
  const count = result.config.apps.length;
  const lines = [`config OK: ${count} ${count === 1 ? 'app' : 'apps'}`];
  for (const app of result.config.apps) {
    if (!app.browserLogin) lines.push(apiOnlySummary(app));
  }
  return { ok: true, output: lines.join('\n') };
}

/**
 * What an API-only app accepts, on one line: each issuer of bearer tokens with its audiences,
 * and that there is no browser login.
 */
export function apiOnlySummary(app: AppConfig): string {
  const { bearer, oidc } = app;
  const sources = [
    { issuer: oidc.issuer, audiences: bearer.audiences },
    ...bearer.issuers.map(({ issuer, audiences }) => ({ issuer, audiences })),
  ].map(({ issuer, audiences }) => `${issuer} (audience ${audiences.join(', ')})`);
  const introspection =
    bearer.introspection?.enabled === true ? ', opaque tokens by introspection' : '';
  return `app ${app.name}: accepts bearer tokens from ${sources.join('; ')}${introspection}; no browser login`;
}
