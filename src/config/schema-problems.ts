/** Turns schema issues into plain configuration problems (`must be a string`, `unknown key`). */

import type { z } from 'zod';

import type { PathSegment } from './config-path.ts';

/** A problem located by path segments relative to the value that was validated. */
export interface LocatedProblem {
  readonly path: readonly PathSegment[];
  readonly message: string;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

/**
 * Plain-language message for a schema issue, passed to `safeParse` as its `error` option.
 * Never quotes the offending input: it may be a secret.
 */
export function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${TYPE_NAMES[issue.expected] ?? `a ${issue.expected}`}`;
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'string') {
        return min === 1 ? 'must not be empty' : `must be at least ${min} characters long`;
      }
      if (issue.origin === 'array') return `must have at least ${min} entries`;
      return issue.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${max} characters long`;
      if (issue.origin === 'array') return `must have at most ${max} entries`;
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'invalid_value':
      return `must be one of: ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      return 'has an invalid format';
    case 'invalid_union':
      return 'has an invalid value';
    default:
      return undefined;
  }
}

/**
 * Flattens schema issues into problems: one per unknown key (so five mistakes are five
 * problems), and a record key's own message for a bad key.
 */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[]): LocatedProblem[] {
  const problems: LocatedProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ path: [...path, key], message: 'unknown key' });
    } else if (issue.code === 'invalid_key') {
      problems.push({ path, message: issue.issues[0]?.message ?? 'is not a valid key' });
    } else {
      problems.push({ path, message: issue.message });
    }
  }
  return problems;
}
