/** Finished spans sent to an OTLP/HTTP collector as JSON, in batches, from a bounded queue; never in a Check's way. */
import type { Logger } from './logger.ts';

/** A span attribute value: OTLP's string or integer. */
export type AttributeValue = string | number;

/** One finished span, as the exporter queues it. Times are Unix epoch milliseconds (fractional). */
export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly traceState: string | undefined;
  readonly name: string;
  /** OTLP `SpanKind`: 2 server, 3 client. */
  readonly kind: 2 | 3;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Readonly<Record<string, AttributeValue | undefined>>;
  /** Set when the span failed: OTLP status `ERROR` with this short message. */
  readonly error: string | undefined;
}

/** Why spans were not exported, the `reason` of `eoa_trace_spans_dropped_total`. */
export type DropReason = 'queue_full' | 'export_failed';

export interface OtlpExporterOptions {
  /** The collector's OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly endpoint: string;
  /** Extra request headers (collector credentials); never logged. */
  readonly headers: Readonly<Record<string, string>>;
  /** `service.name` of the resource. */
  readonly serviceName: string;
  /** Longest one export may take, ms; then it counts as failed. */
  readonly exportTimeoutMs: number;
  /** Longest a span waits in the queue before its batch is sent, ms. */
  readonly flushIntervalMs: number;
  /** Spans held at most; a span that finds the queue full is dropped and counted. */
  readonly maxQueueSize: number;
  /** Spans per export at most. */
  readonly maxBatchSize: number;
}

export interface OtlpExporterDeps {
  readonly logger: Logger;
  /** Counts spans that were not exported. */
  readonly dropped: (reason: DropReason, count: number) => void;
  /** The clock, ms; spaces out the failure lines. */
  readonly now: () => number;
}

/** Where a tracer hands finished spans. */
export interface SpanExporter {
  /** Queues a span; returns at once, whatever the collector does. */
  export(span: SpanRecord): void;
  /**
   * Sends what is queued and stops the timer, within `exportTimeoutMs` or
   * {@link CLOSE_TIMEOUT_MS}, whichever is shorter; what is left then is dropped and counted.
   */
  close(): Promise<void>;
}

/** While exports keep failing, a further line at most this often (the first failure logs at once). */
export const FAILURE_LOG_INTERVAL_MS = 60_000;

/** Longest {@link SpanExporter.close} waits for the collector, so a shutdown keeps its timings. */
export const CLOSE_TIMEOUT_MS = 2_000;

/** The scope named in every export. */
const scope = { name: 'envoy-oidc-authz' };

interface OtlpAttribute {
  readonly key: string;
  readonly value: { readonly stringValue: string } | { readonly intValue: string };
}

/** Epoch milliseconds as OTLP's decimal string of nanoseconds, without losing digits to floats. */
export function unixNanos(ms: number): string {
  let whole = Math.floor(ms);
  let nanos = Math.round((ms - whole) * 1e6);
  if (nanos >= 1e6) {
    whole += 1;
    nanos -= 1e6;
  }
  return whole === 0 ? String(nanos) : `${whole}${String(nanos).padStart(6, '0')}`;
}

function attributesOf(values: SpanRecord['attributes']): OtlpAttribute[] {
  const attributes: OtlpAttribute[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    attributes.push({
      key,
      value: typeof value === 'number' ? { intValue: String(value) } : { stringValue: value },
    });
  }
  return attributes;
}

/**
 * The OTLP/HTTP JSON body (`ExportTraceServiceRequest`) of `spans`: ids in hex, times as
 * decimal strings of nanoseconds, as the OTLP specification's JSON mapping has them.
 */
export function encodeSpans(serviceName: string, spans: readonly SpanRecord[]): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: {
          attributes: attributesOf({ 'service.name': serviceName }),
        },
        scopeSpans: [
          {
            scope,
            spans: spans.map((span) => ({
              traceId: span.traceId,
              spanId: span.spanId,
              // JSON leaves out a property whose value is undefined.
              parentSpanId: span.parentSpanId,
              traceState: span.traceState,
              name: span.name,
              kind: span.kind,
              startTimeUnixNano: unixNanos(span.startMs),
              endTimeUnixNano: unixNanos(span.endMs),
              attributes: attributesOf(span.attributes),
              status: span.error === undefined ? {} : { code: 2, message: span.error },
            })),
          },
        ],
      },
    ],
  });
}

/** Why an export failed, for the log: the collector's status, or the transport's error code. */
function failureOf(error: unknown): string {
  if (
    error instanceof DOMException &&
    (error.name === 'TimeoutError' || error.name === 'AbortError')
  )
    return 'timeout';
  const cause: unknown = error instanceof Error ? error.cause : undefined;
  if (typeof cause === 'object' && cause !== null && 'code' in cause) return String(cause.code);
  return error instanceof Error ? error.name : 'error';
}

/** The collector's URL without credentials or query, safe for a log line. */
function loggableEndpoint(endpoint: string): string {
  const url = URL.parse(endpoint);
  return url === null ? '-' : `${url.origin}${url.pathname}`;
}

/**
 * The exporter `options` ask for. Spans wait in one queue of at most `maxQueueSize`; a batch
 * leaves when `maxBatchSize` are waiting or `flushIntervalMs` after the first one came, one
 * export at a time. A full queue drops the span and counts it; a failed export (no answer within
 * `exportTimeoutMs`, or not 2xx) drops its batch and counts it, and is logged once, then at most
 * once per {@link FAILURE_LOG_INTERVAL_MS} while failures go on.
 */
export function createOtlpExporter(
  options: OtlpExporterOptions,
  deps: OtlpExporterDeps,
): SpanExporter {
  const log = deps.logger.child({ component: 'tracing' });
  const endpoint = loggableEndpoint(options.endpoint);
  const headers = { ...options.headers, 'content-type': 'application/json' };
  let queue: SpanRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  let sending: Promise<void> | undefined;
  /** Set while exports fail: when the last line was written and the failures since. */
  let failing: { loggedAt: number; since: number } | undefined;
  let lastFailed = false;

  const schedule = (): void => {
    if (timer !== undefined || sending !== undefined || queue.length === 0) return;
    timer = setTimeout(flush, queue.length >= options.maxBatchSize ? 0 : options.flushIntervalMs);
    timer.unref();
  };

  function flush(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (sending !== undefined || queue.length === 0) return;
    const batch =
      queue.length <= options.maxBatchSize ? queue : queue.slice(0, options.maxBatchSize);
    queue = batch === queue ? [] : queue.slice(batch.length);
    sending = send(batch).finally(() => {
      sending = undefined;
      schedule();
    });
  }

  async function send(batch: readonly SpanRecord[]): Promise<void> {
    let failure: string | undefined;
    try {
      const response = await fetch(options.endpoint, {
        method: 'POST',
        headers,
        body: encodeSpans(options.serviceName, batch),
        signal: AbortSignal.timeout(options.exportTimeoutMs),
      });
      await response.arrayBuffer();
      if (!response.ok) failure = `status ${response.status}`;
    } catch (error) {
      failure = failureOf(error);
    }
    lastFailed = failure !== undefined;
    if (failure === undefined) {
      if (failing !== undefined) log.info({ endpoint }, 'trace export recovered');
      failing = undefined;
      return;
    }
    deps.dropped('export_failed', batch.length);
    const now = deps.now();
    if (failing === undefined) {
      failing = { loggedAt: now, since: 0 };
      log.warn(
        { endpoint, error: failure, spans: batch.length },
        'trace export failed: spans dropped (Checks are not affected)',
      );
    } else if (now - failing.loggedAt >= FAILURE_LOG_INTERVAL_MS) {
      log.warn(
        { endpoint, error: failure, failedExports: failing.since + 1 },
        'trace export still failing: spans dropped (Checks are not affected)',
      );
      failing = { loggedAt: now, since: 0 };
    } else {
      failing.since += 1;
    }
  }

  return {
    export(span) {
      if (queue.length >= options.maxQueueSize) {
        deps.dropped('queue_full', 1);
        return;
      }
      queue.push(span);
      if (queue.length >= options.maxBatchSize && timer !== undefined && sending === undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      schedule();
    },
    async close() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      let giveUp: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        giveUp = setTimeout(resolve, Math.min(options.exportTimeoutMs, CLOSE_TIMEOUT_MS));
      });
      let gaveUp = false;
      const flushed = (async () => {
        await sending;
        // One failed export ends the flush, and so does the close timeout.
        while (queue.length > 0 && !lastFailed && !gaveUp) {
          flush();
          await sending;
        }
      })();
      await Promise.race([flushed, late]);
      gaveUp = true;
      clearTimeout(giveUp);
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (queue.length > 0) deps.dropped('export_failed', queue.length);
      queue = [];
    },
  };
}
