/**
 * Runs every `*.test.js` under a folder (default `dist/test`), each file in its own
 * `node --test` process, several files at once, longest first. Prints a dot per test and, at
 * the end, a summary: counts, the slowest files, then each failure with its file, its test
 * and its error, and what that file printed. A file's output (provider warnings, figures) is
 * shown only when it fails, or for every file with `--verbose` (or `TEST_VERBOSE=1`).
 *
 *   node dist/dev/run-tests.js [--concurrency N] [--verbose] [folder or file...]
 *
 * Files are independent: each test starts its own servers on free ports and its own temporary
 * folders. Durations are kept in `.cache/test-durations.json` so the next run starts the
 * longest files first.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ReportLine } from './test-reporter.ts';

const here = dirname(fileURLToPath(import.meta.url));
const reporter = join(here, 'test-reporter.js');
const durationsFile = resolve('.cache', 'test-durations.json');
/** What `npm test` always gave a single test: long for a login in a real browser. */
const testTimeoutMs = 300_000;
/** Lines of a failed file's output shown in the summary (the rest with `--verbose`). */
const outputTailLines = 80;

interface Failure {
  readonly file: string;
  readonly path: readonly string[];
  readonly error: string;
}

interface FileResult {
  readonly file: string;
  readonly ms: number;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  readonly failures: readonly Failure[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});
const verbose = values.verbose || process.env['TEST_VERBOSE'] === '1';
const concurrency = Math.max(
  1,
  Number(values.concurrency ?? process.env['TEST_CONCURRENCY'] ?? defaultConcurrency()),
);

/**
 * One file per core and one more: most integration files spend much of their time waiting on
 * child processes (redis-server, the browser) and on token lifetimes.
 */
function defaultConcurrency(): number {
  return availableParallelism() + 1;
}

function findTestFiles(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const full = join(path, entry.name);
      if (entry.isDirectory()) return findTestFiles(full);
      return entry.name.endsWith('.test.js') ? [full] : [];
    });
}

function readDurations(): Record<string, number> {
  try {
    return JSON.parse(readFileSync(durationsFile, 'utf8')) as Record<string, number>;
  } catch {
    return {};
  }
}

/** Longest known first; files not timed yet before them (they may be long, and are few). */
function longestFirst(files: readonly string[], durations: Record<string, number>): string[] {
  const known = (file: string) => durations[relative('.', file)] ?? Number.POSITIVE_INFINITY;
  return [...files].sort((a, b) => known(b) - known(a));
}

function runFile(file: string, onLine: (line: ReportLine) => void): Promise<FileResult> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      '--test',
      `--test-timeout=${testTimeoutMs}`,
      `--test-reporter=${reporter}`,
      '--test-reporter-destination=stdout',
      file,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  const output: string[] = [];
  const failures: Failure[] = [];
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const text of lines) handle(text);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => output.push(chunk));
  const handle = (text: string) => {
    if (text.length === 0) return;
    let line: ReportLine;
    try {
      line = JSON.parse(text) as ReportLine;
    } catch {
      output.push(text + '\n');
      return;
    }
    if (line.kind === 'output') output.push(line.text);
    else if (line.kind === 'fail')
      failures.push({ file, path: line.path, error: line.error ?? 'failed' });
    onLine(line);
  };
  return new Promise((resolveResult) => {
    child.on('close', (exitCode, signal) => {
      running.delete(child);
      handle(pending);
      resolveResult({
        file,
        ms: performance.now() - started,
        exitCode,
        signal,
        output: output.join(''),
        failures,
      });
    });
  });
}

const running = new Set<ReturnType<typeof spawn>>();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    for (const child of running) child.kill('SIGTERM');
    process.exit(130);
  });

const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
let column = 0;
function progress(line: ReportLine): void {
  if (line.kind === 'output') {
    if (verbose) process.stdout.write(line.text);
    return;
  }
  counts[line.kind]++;
  if (verbose) return;
  process.stdout.write(line.kind === 'fail' ? 'X' : '.');
  if (++column % 100 === 0) process.stdout.write('\n');
}

const roots = positionals.length > 0 ? positionals : ['dist/test'];
const files = roots.flatMap(findTestFiles);
const durations = readDurations();
const queue = longestFirst(files, durations);
const startedAt = performance.now();
const results: FileResult[] = [];
await Promise.all(
  Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const result = await runFile(file, progress);
      results.push(result);
      if (verbose) {
        const state = failedFile(result) ? 'FAIL' : 'ok';
        process.stdout.write(`${state} ${relative('.', file)} (${seconds(result.ms)})\n`);
      }
    }
  }),
);
const wallMs = performance.now() - startedAt;
if (column % 100 !== 0) process.stdout.write('\n');

for (const result of results) durations[relative('.', result.file)] = Math.round(result.ms);
try {
  mkdirSync(dirname(durationsFile), { recursive: true });
  writeFileSync(durationsFile, JSON.stringify(durations, null, 2) + '\n');
} catch {
  // Only an ordering hint for the next run.
}

function failedFile(result: FileResult): boolean {
  return result.exitCode !== 0 || result.failures.length > 0;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  if (all.length <= lines) return all.join('\n');
  return [`[... ${all.length - lines} earlier lines]`, ...all.slice(-lines)].join('\n');
}

function indent(text: string): string {
  return text.replace(/^/gm, '    ');
}

const failed = results.filter(failedFile);
const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 5);
const summary = [
  '',
  `tests ${counts.pass + counts.fail + counts.skip + counts.todo}, pass ${counts.pass}, ` +
    `fail ${counts.fail}, skipped ${counts.skip}, todo ${counts.todo}; ` +
    `files ${results.length}, failed ${failed.length}; ` +
    `${seconds(wallMs)} with ${concurrency} at a time`,
  `slowest: ${slowest.map((r) => `${relative('dist/test', r.file)} ${seconds(r.ms)}`).join(', ')}`,
];
for (const result of failed) {
  const file = relative('.', result.file);
  summary.push('', `FAIL ${file}`);
  if (result.signal !== null) summary.push(`  killed by ${result.signal}`);
  else if (result.failures.length === 0) summary.push(`  exited with code ${result.exitCode}`);
  for (const failure of result.failures)
    summary.push(`  ✖ ${failure.path.join(' › ')}`, indent(failure.error));
  if (!verbose && result.output.trim().length > 0)
    summary.push(`  output of ${file}:`, indent(tail(result.output, outputTailLines)));
}
if (failed.length > 0)
  summary.push(
    '',
    `${failed.length} file(s) failed: ${failed.map((r) => relative('.', r.file)).join(' ')}`,
  );
process.stdout.write(summary.join('\n') + '\n');
process.exitCode = failed.length > 0 ? 1 : 0;
