/** Tracing (`tracing`): a span per Check continuing the caller's trace, child spans for provider and store calls; nothing at all when off. */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { AttributeValue, SpanExporter, SpanRecord } from './otlp-exporter.ts';
import { traceHeaderNames, traceParentOf } from './trace-context.ts';

/** What a Check span reads of its request (the request model has it). */
export interface TracedRequest {
  readonly id: string;
  readonly method: string;
  readonly host: string;
  /** Without the query: a query may hold a code or a token. */
  readonly path: string;
  /** Lower-case names. */
  readonly headers: ReadonlyMap<string, string>;
}

/** Something that decides a request for a caller: the pipeline. */
export interface Decider<Q, C, R> {
  decide(request: Q, caller: C): R;
}

/** The span of one Check. */
export interface CheckSpan {
  /**
   * `decider.decide(request, caller)` with this span as the current one, so that the provider
   * and store calls it makes become its children.
   */
  decideWithin<Q, C, R>(decider: Decider<Q, C, R>, request: Q, caller: C): R;
  /** Ends the span with the Check's verdict; a status of 500 or more marks it failed. */
  end(app: string | undefined, verdict: string, reason: string, status: number): void;
  /** Ends the span of a Check that failed without a decision. */
  fail(message: string): void;
}

/** Where a provider call or a store operation is reported when it ends. */
export type ChildSpanHook<K extends string> = (kind: K, seconds: number, error: unknown) => void;

export interface Tracer {
  /** The span of a Check started at `startedAt` (`performance.now()`), continuing its caller's trace. */
  startCheck(request: TracedRequest, startedAt: number): CheckSpan;
  /** The span of a Check whose request could not be modelled: only its id and headers are read. */
  startRefusedCheck(
    id: string,
    headers: Iterable<readonly [string, string]>,
    startedAt: number,
  ): CheckSpan;
  /** A provider call that just ended (`endpoint`: token, jwks, …), a child of the current Check. */
  readonly providerCall: ChildSpanHook<string>;
  /** A store operation that just ended, a child of the current Check. */
  readonly storeCall: ChildSpanHook<string>;
  /** Sends the spans still queued. */
  close(): Promise<void>;
}

/** The span of a Check that is not traced: runs the decision as is. */
export const noSpan: CheckSpan = Object.freeze({
  decideWithin<Q, C, R>(decider: Decider<Q, C, R>, request: Q, caller: C): R {
    return decider.decide(request, caller);
  },
  end(): void {},
  fail(): void {},
});

/** The tracer when tracing is off: a Check pays an empty call, and allocates nothing. */
export const noTracer: Tracer = Object.freeze({
  startCheck: () => noSpan,
  startRefusedCheck: () => noSpan,
  providerCall(): void {},
  storeCall(): void {},
  close: () => Promise.resolve(),
});

/** `tracing` as the tracer reads it. */
export interface TracerOptions {
  /** The share of new traces sampled, 0..1; a caller's own decision always wins. */
  readonly sampleRate: number;
}

export interface TracerDeps {
  readonly exporter: SpanExporter;
  /** Draws the sample; `Math.random` by default. */
  readonly random?: () => number;
}

/** Random span and trace ids in lower-case hex, cut from a pool refilled 4 KiB at a time. */
class IdSource {
  readonly #pool = Buffer.allocUnsafe(4096);
  #at = this.#pool.length;

  next(bytes: 8 | 16): string {
    for (;;) {
      if (this.#at + bytes > this.#pool.length) {
        randomFillSync(this.#pool);
        this.#at = 0;
      }
      const id = this.#pool.toString('hex', this.#at, this.#at + bytes);
      this.#at += bytes;
      // An all-zero id is invalid (W3C Trace Context §3.2.2.3); at 2^-64 odds, draw again.
      if (!/^0+$/.test(id)) return id;
    }
  }
}

/** Epoch milliseconds of a `performance.now()` reading. */
function epochMs(at: number): number {
  return performance.timeOrigin + at;
}

/** A short, safe status message for a failed child call: its error code, or the error's name. */
function errorLabel(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    if ('code' in error && typeof error.code === 'string') return error.code;
    if (error instanceof Error) return error.name;
  }
  return 'error';
}

class RecordingCheckSpan implements CheckSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly #parentSpanId: string | undefined;
  readonly #traceState: string | undefined;
  readonly #startedAt: number;
  readonly #request: TracedRequest | undefined;
  readonly #requestId: string;
  readonly #tracer: RecordingTracer;
  #ended = false;

  constructor(
    tracer: RecordingTracer,
    ids: { traceId: string; spanId: string; parentSpanId?: string; traceState?: string },
    requestId: string,
    request: TracedRequest | undefined,
    startedAt: number,
  ) {
    this.#tracer = tracer;
    this.traceId = ids.traceId;
    this.spanId = ids.spanId;
    this.#parentSpanId = ids.parentSpanId;
    this.#traceState = ids.traceState;
    this.#requestId = requestId;
    this.#request = request;
    this.#startedAt = startedAt;
  }

  decideWithin<Q, C, R>(decider: Decider<Q, C, R>, request: Q, caller: C): R {
    return this.#tracer.scope.run(this, decideWith<Q, C, R>, decider, request, caller);
  }

  end(app: string | undefined, verdict: string, reason: string, status: number): void {
    this.#finish(
      {
        'eoa.app': app,
        'eoa.verdict': verdict,
        'eoa.reason': reason,
        'http.response.status_code': status,
      },
      status >= 500 ? reason : undefined,
    );
  }

  fail(message: string): void {
    this.#finish({}, message);
  }

  #finish(attributes: Record<string, AttributeValue | undefined>, error: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    const request = this.#request;
    this.#tracer.exporter.export({
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.#parentSpanId,
      traceState: this.#traceState,
      name: 'Check',
      kind: 2,
      startMs: epochMs(this.#startedAt),
      endMs: epochMs(performance.now()),
      attributes: {
        'eoa.request_id': this.#requestId,
        'http.request.method': request?.method,
        'server.address': request?.host,
        'url.path': request?.path,
        ...attributes,
      },
      error,
    });
  }
}

function decideWith<Q, C, R>(decider: Decider<Q, C, R>, request: Q, caller: C): R {
  return decider.decide(request, caller);
}

class RecordingTracer implements Tracer {
  readonly scope = new AsyncLocalStorage<RecordingCheckSpan>();
  readonly exporter: SpanExporter;
  readonly #ids = new IdSource();
  readonly #sampleRate: number;
  readonly #random: () => number;
  readonly providerCall: ChildSpanHook<string>;
  readonly storeCall: ChildSpanHook<string>;

  constructor(options: TracerOptions, deps: TracerDeps) {
    this.exporter = deps.exporter;
    this.#sampleRate = options.sampleRate;
    this.#random = deps.random ?? Math.random;
    this.providerCall = (endpoint, seconds, error) =>
      this.#child(`provider ${endpoint}`, 'eoa.provider.endpoint', endpoint, seconds, error);
    this.storeCall = (operation, seconds, error) =>
      this.#child(`store ${operation}`, 'eoa.store.operation', operation, seconds, error);
  }

  startCheck(request: TracedRequest, startedAt: number): CheckSpan {
    return this.#start(request.id, request.headers, request, startedAt);
  }

  startRefusedCheck(
    id: string,
    headers: Iterable<readonly [string, string]>,
    startedAt: number,
  ): CheckSpan {
    const traceHeaders = new Map<string, string>();
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      if (traceHeaderNames.has(lower) && !traceHeaders.has(lower)) traceHeaders.set(lower, value);
    }
    return this.#start(id, traceHeaders, undefined, startedAt);
  }

  close(): Promise<void> {
    // The async hooks behind the scope cost every promise in the process while any scope is
    // enabled (Node 20): a reload that turns tracing off gives that back at once.
    this.scope.disable();
    return this.exporter.close();
  }

  #start(
    requestId: string,
    headers: ReadonlyMap<string, string>,
    request: TracedRequest | undefined,
    startedAt: number,
  ): CheckSpan {
    const parent = traceParentOf(headers);
    const sampled = parent?.sampled ?? this.#random() < this.#sampleRate;
    if (!sampled) return noSpan;
    const spanId = this.#ids.next(8);
    const ids =
      parent?.traceId === undefined
        ? { traceId: this.#ids.next(16), spanId }
        : {
            traceId: parent.traceId,
            spanId,
            parentSpanId: parent.spanId,
            ...(parent.traceState === undefined ? {} : { traceState: parent.traceState }),
          };
    return new RecordingCheckSpan(this, ids, requestId, request, startedAt);
  }

  #child(name: string, key: string, kind: string, seconds: number, error: unknown): void {
    const parent = this.scope.getStore();
    if (parent === undefined) return;
    const endMs = epochMs(performance.now());
    const record: SpanRecord = {
      traceId: parent.traceId,
      spanId: this.#ids.next(8),
      parentSpanId: parent.spanId,
      traceState: undefined,
      name,
      kind: 3,
      startMs: endMs - seconds * 1000,
      endMs,
      attributes: { [key]: kind },
      error: error === undefined ? undefined : errorLabel(error),
    };
    this.exporter.export(record);
  }
}

/**
 * The tracer `options` ask for, decided once: spans go to `deps.exporter`. A caller's sampling
 * decision (W3C `sampled` flag, B3 `x-b3-sampled`/`x-b3-flags`/`b3`) is followed; without one a
 * new trace is sampled at `sampleRate`. An unsampled Check gets {@link noSpan}.
 */
export function createTracer(options: TracerOptions, deps: TracerDeps): Tracer {
  return new RecordingTracer(options, deps);
}
