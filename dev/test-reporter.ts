/**
 * The `node --test` reporter that `run-tests.ts` gives each test file: one JSON line per finished
 * test and per chunk of output, for the runner to count, summarise and show only when needed.
 */
import { inspect } from 'node:util';
import type { TestEvent } from 'node:test/reporters';

/** One line this reporter writes. */
export type ReportLine =
  | {
      readonly kind: 'pass' | 'fail' | 'skip' | 'todo';
      /** Names from the outermost suite down to the test. */
      readonly path: readonly string[];
      readonly ms: number;
      /** The failure, formatted with its stack and cause (fail only). */
      readonly error?: string;
    }
  | { readonly kind: 'output'; readonly text: string };

interface FailureDetails {
  readonly error?: Error & { failureType?: string; cause?: unknown };
  readonly type?: string;
}

/** Whose failure is only that a subtest failed: the subtest is reported itself. */
function onlySubtestsFailed(details: FailureDetails): boolean {
  return details.type === 'suite' && details.error?.failureType === 'subtestsFailed';
}

/** Stack frames inside Node's test runner and promise machinery: noise in a failure report. */
const runnerFrame =
  /^\s+at (?:.*[( ])?(?:node:internal\/|node:async_hooks|new Promise \(<anonymous>\)|Array\.map \(<anonymous>\))/;

function formatError(error: FailureDetails['error']): string {
  if (error === undefined) return 'failed';
  // The runner wraps what the test threw; the thrown value is what explains the failure.
  const thrown = error.failureType === 'testCodeFailure' ? error.cause : error;
  return inspect(thrown, { depth: 6, breakLength: 100 })
    .split('\n')
    .filter((line) => !runnerFrame.test(line))
    .join('\n');
}

export default async function* testReporter(
  source: AsyncIterable<TestEvent>,
): AsyncGenerator<string, void> {
  const names: string[] = [];
  for await (const event of source) {
    switch (event.type) {
      case 'test:start':
        names.length = event.data.nesting;
        names.push(event.data.name);
        break;
      case 'test:pass':
      case 'test:fail': {
        const { data } = event;
        const details = data.details as FailureDetails & { duration_ms: number };
        const path = [...names.slice(0, data.nesting), data.name];
        // A file is itself a test only when it has none of its own, or failed to run them.
        if (event.type === 'test:pass' && (details.type === 'suite' || data.name === data.file))
          break;
        if (event.type === 'test:fail' && onlySubtestsFailed(details)) break;
        const kind =
          event.type === 'test:fail'
            ? 'fail'
            : data.skip !== undefined
              ? 'skip'
              : data.todo !== undefined
                ? 'todo'
                : 'pass';
        const line: ReportLine =
          kind === 'fail'
            ? { kind, path, ms: details.duration_ms, error: formatError(details.error) }
            : { kind, path, ms: details.duration_ms };
        yield JSON.stringify(line) + '\n';
        break;
      }
      case 'test:stdout':
      case 'test:stderr':
        yield (
          JSON.stringify({ kind: 'output', text: event.data.message } satisfies ReportLine) + '\n'
        );
        break;
      case 'test:diagnostic':
        // The summary lines (tests, pass, duration_ms...) are the runner's to write.
        break;
      default:
        break;
    }
  }
}
