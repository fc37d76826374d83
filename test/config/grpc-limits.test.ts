import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grpcLimitsSchema } from '../../src/config/schema.ts';
import { testApp, testConfig } from '../support/test-server.ts';

describe('limits.grpc', () => {
  it('bounds the gRPC listener by default', () => {
    const limits = testConfig({ apps: [testApp('a')] }).limits.grpc;
    assert.deepEqual(limits, {
      maxConcurrentStreams: 256,
      maxMessageBytes: 1_114_112,
      maxBufferedBytes: 64 * 1024 * 1024,
      maxHeaderListBytes: 65_536,
      maxConnections: 4096,
      headersTimeout: 10_000,
      requestTimeout: 10_000,
      idleTimeout: 300_000,
    });
    assert.deepEqual(
      grpcLimitsSchema.parse({}),
      limits,
      'tools building the transport get the same',
    );
  });

  it('takes durations and refuses a budget smaller than one message', () => {
    const limits = testConfig({
      apps: [testApp('a')],
      limits: { grpc: { idleTimeout: '90s', maxMessageBytes: 4096, maxBufferedBytes: 4101 } },
    }).limits.grpc;
    assert.equal(limits.idleTimeout, 90_000);
    assert.throws(
      () =>
        testConfig({
          apps: [testApp('a')],
          limits: { grpc: { maxMessageBytes: 8192, maxBufferedBytes: 8192 } },
        }),
      /limits\.grpc\.maxBufferedBytes: must be at least maxMessageBytes \+ 5/,
    );
  });
});
