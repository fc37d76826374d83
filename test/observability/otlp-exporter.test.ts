/** The OTLP/HTTP exporter against a real HTTP receiver: batches, the flush at close, failure lines spaced by the clock. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  FAILURE_LOG_INTERVAL_MS,
  createOtlpExporter,
  unixNanos,
  type DropReason,
  type OtlpExporterOptions,
  type SpanRecord,
} from '../../src/observability/otlp-exporter.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';
import { waitFor } from '../support/redis-servers.ts';

function span(n: number): SpanRecord {
  return {
    traceId: `${'ab'.repeat(15)}${String(n).padStart(2, '0')}`,
    spanId: `${'cd'.repeat(7)}${String(n).padStart(2, '0')}`,
    parentSpanId: undefined,
    traceState: undefined,
    name: `span ${n}`,
    kind: 2,
    startMs: 1_700_000_000_000.25,
    endMs: 1_700_000_000_001.5,
    attributes: { n, 'eoa.app': 'web', absent: undefined },
    error: n % 2 === 0 ? undefined : 'IDP_UNAVAILABLE',
  };
}

describe('unixNanos', () => {
  it('writes epoch milliseconds as nanoseconds without float rounding in the high digits', () => {
    assert.equal(unixNanos(1_700_000_000_000), '1700000000000000000');
    assert.equal(unixNanos(1_700_000_000_000.25), '1700000000000250000');
    assert.equal(unixNanos(1_700_000_000_000 + 0.9999999), '1700000000001000000');
    assert.equal(unixNanos(0.000001), '1');
  });
});

describe('createOtlpExporter', () => {
  let receiver: OtlpReceiver;
  let log: CapturedLog;
  let clock: number;
  const drops: [DropReason, number][] = [];

  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(() => receiver.close());

  function exporter(options: Partial<OtlpExporterOptions> = {}) {
    log = captureLog();
    clock = 0;
    drops.length = 0;
    return createOtlpExporter(
      {
        endpoint: receiver.endpoint,
        headers: { 'x-collector-key': 'collector-key-value' },
        serviceName: 'svc',
        exportTimeoutMs: 1_000,
        flushIntervalMs: 3_600_000,
        maxQueueSize: 100,
        maxBatchSize: 2,
        ...options,
      },
      {
        logger: log.logger,
        dropped: (reason, count) => drops.push([reason, count]),
        now: () => clock,
      },
    );
  }

  it('sends full batches at once, the rest at close, as OTLP JSON', async () => {
    receiver.mode = 'ok';
    const from = receiver.bodies.length;
    const spans = exporter();
    for (let n = 0; n < 5; n++) spans.export(span(n));
    await waitFor('two full batches', () => receiver.bodies.length - from === 2);
    await spans.close();
    assert.equal(receiver.bodies.length - from, 3, 'the last, partial batch is sent at close');
    const received = receiver.spans.slice(-5);
    assert.deepEqual(
      received.map((s) => s.name),
      ['span 0', 'span 1', 'span 2', 'span 3', 'span 4'],
    );
    const [first, second] = received;
    assert.equal(first?.serviceName, 'svc');
    assert.equal(first?.kind, 2);
    assert.equal(first?.startTimeUnixNano, '1700000000000250000');
    assert.equal(first?.endTimeUnixNano, '1700000000001500000');
    assert.deepEqual(first?.attributes, { n: 0, 'eoa.app': 'web' });
    assert.deepEqual(first?.status, {});
    assert.deepEqual(second?.status, { code: 2, message: 'IDP_UNAVAILABLE' });
    assert.equal(receiver.requests.at(-1)?.['x-collector-key'], 'collector-key-value');
    assert.deepEqual(drops, []);
  });

  it('logs the first failure, then at most once a minute, and the recovery; never the headers', async () => {
    receiver.mode = 'fail';
    const spans = exporter({ maxBatchSize: 1 });
    const failedExports = async (count: number) => {
      const from = receiver.bodies.length;
      for (let n = 0; n < count; n++) spans.export(span(n));
      await waitFor('the exports', () => receiver.bodies.length - from === count);
      await waitFor('their drops', () => drops.length >= count);
      drops.length = 0;
    };
    await failedExports(3);
    assert.deepEqual(
      log.lines().map((line) => [line['level'], line['msg'], line['error']]),
      [['warn', 'trace export failed: spans dropped (Checks are not affected)', 'status 500']],
    );
    clock += FAILURE_LOG_INTERVAL_MS - 1;
    await failedExports(1);
    assert.equal(log.lines().length, 1);
    clock += 1;
    await failedExports(1);
    assert.equal(log.lines().length, 2);
    assert.equal(log.lines()[1]?.['failedExports'], 4);
    receiver.mode = 'ok';
    const from = receiver.spans.length;
    spans.export(span(9));
    await waitFor('a taken export', () => receiver.spans.length > from);
    await waitFor('the recovery line', () => log.lines().length === 3);
    assert.equal(log.lines()[2]?.['msg'], 'trace export recovered');
    assert.ok(!log.text().includes('collector-key-value'));
    await spans.close();
  });

  it('drops and counts what finds the queue full, and what close cannot send', async () => {
    receiver.mode = 'hold';
    const spans = exporter({ maxQueueSize: 3, maxBatchSize: 1, exportTimeoutMs: 100 });
    const from = receiver.bodies.length;
    spans.export(span(0));
    await waitFor('the held export', () => receiver.bodies.length - from === 1);
    for (let n = 1; n <= 5; n++) spans.export(span(n));
    assert.deepEqual(drops, [
      ['queue_full', 1],
      ['queue_full', 1],
    ]);
    // Close waits for the held export to time out, then gives up on the rest at once.
    await spans.close();
    assert.deepEqual(drops.slice(2), [
      ['export_failed', 1],
      ['export_failed', 3],
    ]);
    receiver.mode = 'ok';
  });
});
