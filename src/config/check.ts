/** `check-config`: validates a configuration file and formats the outcome for a terminal. */

import type { Environment } from './interpolate.ts';
import { loadConfig, type LoadOptions } from './load.ts';

/** The outcome of a check: `output` is ready to print, one line per problem. */
export interface CheckResult {
  readonly ok: boolean;
  readonly output: string;
}

/**
 * Loads the configuration at `path` with `env` and reports every problem as `path: message`,
 * one per line, or `config OK: N apps` (`1 app`) when it is valid. The caller prints `output`
 * and exits non-zero when `ok` is false.
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
  return { ok: true, output: `config OK: ${count} ${count === 1 ? 'app' : 'apps'}` };
}
