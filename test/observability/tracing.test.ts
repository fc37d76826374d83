/** The tracer: sampling, parents, child spans through async calls, and the Null objects when off. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import type { SpanExporter, SpanRecord } from '../../src/observability/otlp-exporter.ts';
import {
  createTracer,
  noSpan,
  noTracer,
  type TracedRequest,
} from '../../src/observability/tracing.ts';

const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const parentId = '00f067aa0ba902b7';

/** An exporter that keeps what it is given: the tracer's port, no transport behind it. */
function keptSpans(): SpanExporter & { readonly spans: SpanRecord[] } {
  const spans: SpanRecord[] = [];
  return { spans, export: (span) => spans.push(span), close: () => Promise.resolve() };
}

function request(headers: Record<string, string> = {}): TracedRequest {
  return {
    id: '1234',
    method: 'GET',
    host: 'web.example.com',
    path: '/reports',
    headers: new Map(Object.entries(headers)),
  };
}

const decider = {
  decide: (value: number, caller: string): string => `${caller}:${value}`,
};

describe('noTracer', () => {
  it('hands out the one Null span, which runs the decision as is', () => {
    const span = noTracer.startCheck(request(), performance.now());
    assert.equal(span, noSpan);
    assert.equal(noTracer.startRefusedCheck('1', [], 0), noSpan);
    assert.equal(span.decideWithin(decider, 7, 'c'), 'c:7');
    span.end('web', 'allow', 'session', 200);
    noTracer.providerCall('token', 0.1, undefined);
  });
});

describe('createTracer', () => {
  it('samples new traces at sampleRate and always follows a caller that decided', () => {
    const exporter = keptSpans();
    let draw = 0.5;
    const tracer = createTracer({ sampleRate: 0.25 }, { exporter, random: () => draw });
    assert.equal(tracer.startCheck(request(), 0), noSpan, '0.5 is not under 0.25');
    draw = 0.1;
    assert.notEqual(tracer.startCheck(request(), 0), noSpan);
    draw = 0.9;
    const sampled = tracer.startCheck(request({ traceparent: `00-${traceId}-${parentId}-01` }), 0);
    assert.notEqual(sampled, noSpan, 'the caller sampled');
    draw = 0;
    assert.equal(
      tracer.startCheck(request({ traceparent: `00-${traceId}-${parentId}-00` }), 0),
      noSpan,
      'the caller did not sample',
    );
    assert.equal(tracer.startCheck(request({ b3: '0' }), 0), noSpan);
    // B3 ids without a sampling state leave the decision to the sample rate.
    draw = 0.9;
    assert.equal(
      tracer.startCheck(request({ 'x-b3-traceid': traceId, 'x-b3-spanid': parentId }), 0),
      noSpan,
    );
  });

  it('ends a Check span once, with its verdict, marking 5xx as an error', () => {
    const exporter = keptSpans();
    const tracer = createTracer({ sampleRate: 1 }, { exporter });
    const started = performance.now();
    const span = tracer.startCheck(
      request({ traceparent: `00-${traceId}-${parentId}-01` }),
      started,
    );
    span.end('web', 'unavailable', 'store_unavailable', 503);
    span.end('web', 'allow', 'session', 200);
    assert.equal(exporter.spans.length, 1);
    const [record] = exporter.spans;
    assert.equal(record?.traceId, traceId);
    assert.equal(record?.parentSpanId, parentId);
    assert.equal(record?.error, 'store_unavailable');
    assert.equal(record?.attributes['http.response.status_code'], 503);
    assert.ok(record.startMs <= record.endMs);
    assert.ok(Math.abs(record.startMs - Date.now()) < 60_000);
  });

  it('makes the provider and store calls of a decision its children, across awaits', async () => {
    const exporter = keptSpans();
    const tracer = createTracer({ sampleRate: 1 }, { exporter });
    const span = tracer.startCheck(request(), performance.now());
    const asyncDecider = {
      async decide(_request: number, _caller: undefined): Promise<void> {
        await Promise.resolve();
        tracer.providerCall('token', 0.002, undefined);
        await new Promise((resolve) => setImmediate(resolve));
        tracer.storeCall('get', 0.001, Object.assign(new Error('down'), { code: 'STORE_DOWN' }));
      },
    };
    await span.decideWithin(asyncDecider, 0, undefined);
    tracer.providerCall('jwks', 0.001, undefined);
    span.end('web', 'allow', 'session', 200);
    const [token, get, check] = exporter.spans;
    assert.equal(exporter.spans.length, 3, 'a call outside the decision has no span');
    assert.equal(check?.name, 'Check');
    assert.equal(token?.name, 'provider token');
    assert.equal(token?.parentSpanId, check?.spanId);
    assert.equal(token?.traceId, check?.traceId);
    assert.equal(token?.kind, 3);
    assert.equal(token?.error, undefined);
    assert.equal(get?.name, 'store get');
    assert.equal(get?.error, 'STORE_DOWN');
    assert.equal(get?.attributes['eoa.store.operation'], 'get');
    assert.ok(Math.abs(token.endMs - token.startMs - 2) < 1e-6);
  });

  it('reads the parent of a request that could not be modelled from its raw headers', () => {
    const exporter = keptSpans();
    const tracer = createTracer({ sampleRate: 1 }, { exporter });
    tracer
      .startRefusedCheck('9', [['TraceParent', `00-${traceId}-${parentId}-01`]], 0)
      .end(undefined, 'deny', 'bad_request', 400);
    assert.equal(exporter.spans[0]?.traceId, traceId);
    assert.equal(exporter.spans[0]?.attributes['url.path'], undefined);
  });
});
