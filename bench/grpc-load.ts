/**
 * A gRPC-over-HTTP/2 load generator that sends a different request per call, which h2load cannot
 * (its `-d` sends one body for every request; `-i` varies the URI, never the body): N connections
 * × M concurrent streams, cycling through pre-encoded gRPC frames, counting answers by
 * `grpc-status` and by the label of the frame sent, with every latency kept for percentiles.
 * With a target rate it is open-loop, as Envoy is: calls start on schedule whatever is still in
 * flight, and latency counts from the scheduled start (no coordinated omission).
 *
 * Run as its own process by the bench (`node grpc-load.js <options.json>`, one JSON line out) so
 * its CPU is not the bench's, but it still shares the machine with the server it drives.
 */
import http2 from 'node:http2';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { percentile } from './h2load.ts';

export interface LoadOptions {
  /** `host:port` of the gRPC server. */
  readonly target: string;
  /** Default the ext_authz Check method. */
  readonly path?: string;
  readonly connections: number;
  /** Concurrent streams per connection (unthrottled runs). */
  readonly streams: number;
  /** Measured seconds. */
  readonly seconds: number;
  /** Total calls per second across connections; unthrottled when absent. */
  readonly rate?: number;
  /** gRPC message frames (5-byte prefix and message), sent in turn. */
  readonly frames: readonly Buffer[];
  /** A label per frame (the verdict it must get); answers with `grpc-status` 0 count under it. */
  readonly labels?: readonly string[];
  /** Where in `frames` to start, so consecutive runs carry on through the rotation. */
  readonly startAt?: number;
  /**
   * Send each frame at most once (frames a server refuses when replayed, as DPoP proofs): no
   * call starts once the frames run out, and the result says `exhausted`.
   */
  readonly once?: boolean;
}

export interface LoadResult {
  readonly calls: number;
  readonly seconds: number;
  /** Completed calls per second. */
  readonly rps: number;
  /** Completed calls by `grpc-status` (`"none"`: the answer carried no status). */
  readonly byGrpcStatus: Readonly<Record<string, number>>;
  /** Calls answered with `grpc-status` 0, by label of the frame sent. */
  readonly byLabel: Readonly<Record<string, number>>;
  /** Calls that ended without an answer (stream or connection error). */
  readonly errors: number;
  /** Answers with an HTTP status other than 200. */
  readonly httpErrors: number;
  /** CPU time (user + system) of the generating process per completed call, microseconds. */
  readonly cpuUsPerCall: number;
  /** Connections replaced because the server closed them or sent GOAWAY. */
  readonly reconnects: number;
  /** Next frame index: the `startAt` of a run that carries on. */
  readonly nextFrame: number;
  /** With `once`: the frames ran out before the run ended (a generator limit, not the server's). */
  readonly exhausted: boolean;
  readonly latencyMs: {
    readonly p50: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
}

const checkPath = '/envoy.service.auth.v3.Authorization/Check';

/** Splits concatenated gRPC frames (as in a `.grpc` file) back into one buffer per frame. */
export function splitFrames(bytes: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const end = at + 5 + bytes.readUInt32BE(at + 1);
    if (end > bytes.length) throw new Error(`truncated gRPC frame at byte ${at}`);
    frames.push(bytes.subarray(at, end));
    at = end;
  }
  if (at !== bytes.length) throw new Error(`trailing bytes after the last gRPC frame`);
  return frames;
}

/** Drives `options.target` for `options.seconds` and reports what came back. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  if (options.frames.length === 0) throw new Error('no frames to send');
  const path = options.path ?? checkPath;
  /** Connections the server sent GOAWAY on: no new call goes there. */
  const goingAway = new WeakSet<http2.ClientHttp2Session>();
  const connect = (): http2.ClientHttp2Session => {
    const session = http2.connect(`http://${options.target}`, { settings: { enablePush: false } });
    // A connection error also fails the streams on it, which count it; here it must not throw.
    session.on('error', () => {});
    session.on('goaway', () => goingAway.add(session));
    return session;
  };
  const sessions = Array.from({ length: options.connections }, connect);
  let reconnects = 0;
  /** The connection of slot `i`, a new one when the server closed or is closing it. */
  const sessionAt = (i: number): http2.ClientHttp2Session => {
    const current = sessions[i]!;
    if (!current.closed && !current.destroyed && !goingAway.has(current)) return current;
    reconnects++;
    if (!current.closed) current.close();
    const next = connect();
    sessions[i] = next;
    return next;
  };
  // Every connection's SETTINGS, before the first call: its stream limit is known.
  await Promise.all(
    sessions.map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          s.once('remoteSettings', () => resolve());
          s.once('error', reject);
        }),
    ),
  );
  /**
   * Streams open per connection, and the most the server allows on one (its
   * SETTINGS_MAX_CONCURRENT_STREAMS). Like Envoy, the generator never opens more: a call that
   * falls due while every connection is full waits for a stream to end (node's client would
   * send it anyway, and a server cuts off a client that ignores its limit).
   */
  const open = new Map<http2.ClientHttp2Session, number>();
  const streamLimit = Math.min(
    ...sessions.map((s) => s.remoteSettings.maxConcurrentStreams ?? 2 ** 31 - 1),
  );
  /** The slot the next call tries first (round robin). */
  let connection = 0;
  /** A connection with a stream to spare, round robin; undefined when all are full. */
  const nextSession = (): http2.ClientHttp2Session | undefined => {
    for (let tried = 0; tried < sessions.length; tried++) {
      const session = sessionAt(connection++ % sessions.length);
      if ((open.get(session) ?? 0) < streamLimit) return session;
    }
    return undefined;
  };
  const byGrpcStatus: Record<string, number> = {};
  const byLabel: Record<string, number> = {};
  let errors = 0;
  let httpErrors = 0;
  let calls = 0;
  let latencies = new Float64Array(1 << 16);
  let frame = options.startAt ?? 0;
  let stopping = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let exhausted = false;
  const headers = {
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
  };

  const record = (ms: number): void => {
    if (calls === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[calls++] = ms;
  };

  /**
   * One call; `startedAt` is when it was due (open loop) or sent (closed loop). False when no
   * frame is left to send (`once`).
   */
  const call = (startedAt: number, done: () => void): boolean => {
    if (options.once === true && frame >= options.frames.length) {
      exhausted = true;
      return false;
    }
    const session = nextSession();
    if (session === undefined) return false;
    const index = frame % options.frames.length;
    frame = index + 1;
    open.set(session, (open.get(session) ?? 0) + 1);
    inFlight++;
    let status: string | undefined;
    let httpStatus = 0;
    let finished = false;
    const finish = (failed: boolean): void => {
      if (finished) return;
      finished = true;
      inFlight--;
      open.set(session, open.get(session)! - 1);
      if (failed) errors++;
      else {
        if (httpStatus !== 200) httpErrors++;
        const key = status ?? 'none';
        byGrpcStatus[key] = (byGrpcStatus[key] ?? 0) + 1;
        const label = options.labels?.[index];
        if (status === '0' && label !== undefined) byLabel[label] = (byLabel[label] ?? 0) + 1;
        record(performance.now() - startedAt);
      }
      if (inFlight === 0 && drained !== undefined) drained();
      done();
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers);
    } catch {
      finish(true);
      return true;
    }
    stream.on('response', (h) => {
      httpStatus = Number(h[':status']);
      // A trailers-only answer carries grpc-status in the headers.
      const s = h['grpc-status'];
      if (typeof s === 'string') status = s;
    });
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      const s = t['grpc-status'];
      if (typeof s === 'string') status = s;
    });
    stream.resume();
    stream.on('end', () => finish(false));
    stream.on('error', () => finish(true));
    stream.on('close', () => finish(httpStatus === 0));
    stream.end(options.frames[index]);
    return true;
  };

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const endAt = started + options.seconds * 1000;
  if (options.rate === undefined) {
    const loop = (): void => {
      if (stopping || performance.now() >= endAt) return;
      call(performance.now(), loop);
    };
    for (let i = 0; i < options.connections * options.streams; i++) loop();
    await new Promise<void>((resolve) => setTimeout(resolve, options.seconds * 1000));
  } else {
    const interval = 1000 / options.rate;
    const total = options.rate * options.seconds;
    let issued = 0;
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let ended = false;
      const tick = (): void => {
        timer = undefined;
        const now = performance.now();
        const due = Math.min(Math.floor((now - started) / interval) + 1, total);
        while (issued < due && call(started + issued * interval, whenDone)) issued++;
        // Every call due in the run is sent, however late (its latency counts from when it
        // was due), unless the frames of a once-only run ran out.
        if (exhausted || issued >= total) {
          ended = true;
          resolve();
          return;
        }
        // Behind, with every connection full: the next stream to end sends more.
        if (issued < due) return;
        timer = setTimeout(tick, Math.max(0, Math.min(1, started + issued * interval - now)));
      };
      const whenDone = (): void => {
        if (!ended && timer === undefined) tick();
      };
      tick();
    });
  }
  stopping = true;
  const elapsed = (performance.now() - started) / 1000;
  if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
  await Promise.all(sessions.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  const cpu = process.cpuUsage(cpuBefore);
  const sorted = latencies.subarray(0, calls).sort();
  return {
    calls,
    seconds: elapsed,
    rps: calls / elapsed,
    byGrpcStatus,
    byLabel,
    errors,
    httpErrors,
    reconnects,
    cpuUsPerCall: (cpu.user + cpu.system) / Math.max(1, calls),
    nextFrame: frame % options.frames.length,
    exhausted,
    latencyMs: {
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      p999: percentile(sorted, 0.999),
      max: sorted[sorted.length - 1] ?? Number.NaN,
    },
  };
}

/** What the child process reads: the load options, with the frames in a file of their own. */
export interface LoadJob extends Omit<LoadOptions, 'frames'> {
  /** Concatenated gRPC frames. */
  readonly framesFile: string;
}

/**
 * Runs {@link runLoad} in a process of its own (this file, compiled), so the generator's CPU is
 * neither the bench's nor the server's; `jobFile` is written here and may be reused.
 */
export async function runLoadProcess(job: LoadJob, jobFile: string): Promise<LoadResult> {
  writeFileSync(jobFile, JSON.stringify(job));
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), jobFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`load generator exited with ${code}:\n${err}`);
  return JSON.parse(out) as LoadResult;
}

if (process.argv[1]?.endsWith('grpc-load.js') === true && process.argv[2] !== undefined) {
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as LoadJob;
  const { framesFile, ...rest } = job;
  const result = await runLoad({ ...rest, frames: splitFrames(readFileSync(framesFile)) });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
