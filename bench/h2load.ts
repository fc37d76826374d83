/** Runs h2load against a gRPC endpoint with a fixed request frame and reads back what it measured. */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

/** Where to get h2load when it is missing. */
export const h2loadInstallHint =
  'h2load is missing: install it with `sudo apt-get install -y nghttp2-client` (Debian/Ubuntu), ' +
  '`brew install nghttp2` (macOS), or `dnf install nghttp2` (Fedora).';

/** The h2load version line, or `undefined` when it is not on the PATH. */
export function h2loadVersion(): string | undefined {
  const probe = spawnSync('h2load', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) return undefined;
  return probe.stdout.trim();
}

export interface H2loadOptions {
  /** e.g. `http://127.0.0.1:9001/envoy.service.auth.v3.Authorization/Check`. */
  readonly url: string;
  /** File holding one gRPC message frame, sent as the body of every request. */
  readonly frameFile: string;
  /** Concurrent connections. */
  readonly clients: number;
  /** Concurrent streams per connection. */
  readonly streams: number;
  /** Measured duration, seconds. */
  readonly seconds: number;
  /** Unmeasured warm-up before it, seconds. Default 0. */
  readonly warmupSeconds?: number;
  /** Requests per second per client; unthrottled when absent. */
  readonly rpsPerClient?: number;
  /** Where per-request latencies go; they are read back for percentiles when given. */
  readonly logFile?: string;
}

export interface H2loadResult {
  /** Requests per second over the measured duration. */
  readonly rps: number;
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly status2xx: number;
  /** Per-request latency percentiles in milliseconds (only with `logFile`). */
  readonly latencyMs?: { readonly p50: number; readonly p99: number; readonly max: number };
}

function numberAfter(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  if (match?.[1] === undefined)
    throw new Error(`h2load output lacks ${String(pattern)}:\n${output}`);
  return Number(match[1]);
}

/** Percentile by nearest rank over sorted values. */
export function percentile(sorted: Float64Array | readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** Reads h2load's log (`start µs`, `status`, `duration µs` per line) into sorted ms latencies. */
function latenciesFrom(logFile: string): Float64Array {
  const lines = readFileSync(logFile, 'utf8').split('\n');
  const values = new Float64Array(lines.length);
  let n = 0;
  for (const line of lines) {
    const duration = line.split('\t')[2];
    if (duration !== undefined && duration !== '') values[n++] = Number(duration) / 1000;
  }
  return values.subarray(0, n).sort();
}

/** Runs h2load once; rejects when it exits non-zero. */
export async function runH2load(options: H2loadOptions): Promise<H2loadResult> {
  const args = [
    '-d',
    options.frameFile,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    '-t',
    '1',
    '-c',
    String(options.clients),
    '-m',
    String(options.streams),
    '-D',
    String(options.seconds),
  ];
  if (options.warmupSeconds !== undefined && options.warmupSeconds > 0)
    args.push(`--warm-up-time=${options.warmupSeconds}`);
  if (options.rpsPerClient !== undefined)
    args.push(`--rps=${Math.max(1, Math.round(options.rpsPerClient))}`);
  if (options.logFile !== undefined) args.push(`--log-file=${options.logFile}`);
  args.push(options.url);

  const child = spawn('h2load', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`h2load exited with ${code}:\n${output}`);

  let latencyMs: H2loadResult['latencyMs'];
  if (options.logFile !== undefined) {
    const sorted = latenciesFrom(options.logFile);
    rmSync(options.logFile, { force: true });
    latencyMs = {
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
    };
  }
  return {
    rps: numberAfter(output, /finished in [\d.]+\w+, ([\d.]+) req\/s/),
    done: numberAfter(output, /requests: \d+ total, \d+ started, (\d+) done/),
    succeeded: numberAfter(output, /(\d+) succeeded/),
    failed: numberAfter(output, /(\d+) failed/),
    errored: numberAfter(output, /(\d+) errored/),
    status2xx: numberAfter(output, /status codes: (\d+) 2xx/),
    ...(latencyMs === undefined ? {} : { latencyMs }),
  };
}
