import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { grpcLimitsSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import {
  GrpcError,
  GrpcStatus,
  GrpcTransport,
  frameMessage,
  grpcTimeoutMs,
  type GrpcMethod,
  type ResponseStream,
  type UnaryCall,
} from '../../src/server/grpc-transport.ts';
import { loadProtos, ServingStatus } from '../../src/server/protos.ts';
import { captureLog } from '../resilience/log-capture.ts';
import { waitFor } from '../support/redis-servers.ts';

// The transport is exercised with grpc-js clients (what Envoy's Google gRPC client and our own
// tests speak) and, for what no well-behaved client sends, with raw HTTP/2 frames.

const health = loadProtos().health;
const checkDef = health['Check'];
const watchDef = health['Watch'];
if (checkDef === undefined || watchDef === undefined) throw new Error('health protos missing');
const encodeRequest = (service: string): Buffer => checkDef.requestSerialize({ service });

const maxMessageBytes = 1024;
const streams: ResponseStream<unknown>[] = [];
let slowRelease: (() => void) | undefined;
/** The call of the last `held` request, and what answers it. */
let heldCall: UnaryCall | undefined;
let heldRelease: (() => void) | undefined;

// One method per behaviour, keyed by the requested service name.
const unexpectedPath = '/test.Unexpected/Call';
const methods = new Map<string, GrpcMethod>([
  [
    unexpectedPath,
    {
      kind: 'unary',
      decode: checkDef.requestDeserialize,
      encode: checkDef.responseSerialize,
      handle: () => Promise.reject(new Error('store timed out')),
      unexpected: new GrpcError(GrpcStatus.UNAVAILABLE, 'no decision could be made'),
    },
  ],
  [
    checkDef.path,
    {
      kind: 'unary',
      decode: checkDef.requestDeserialize,
      encode: checkDef.responseSerialize,
      handle: (request: { service: string }, call: UnaryCall) => {
        switch (request.service) {
          case 'held':
            heldCall = call;
            return new Promise((resolve) => {
              heldRelease = () => resolve({ status: ServingStatus.SERVING });
            });
          case 'sync':
            return { status: ServingStatus.SERVING };
          case 'async':
            return Promise.resolve({ status: ServingStatus.NOT_SERVING });
          case 'not-found':
            throw new GrpcError(GrpcStatus.NOT_FOUND, 'no such thing\r\nset-cookie: x=1');
          case 'rejects':
            return Promise.reject(new GrpcError(GrpcStatus.UNAVAILABLE, 'try later'));
          case 'bug':
            throw new Error('secret-token-value leaked?');
          case 'slow':
            return new Promise((resolve) => {
              slowRelease = () => resolve({ status: ServingStatus.SERVING });
            });
          default:
            return { status: ServingStatus.SERVICE_UNKNOWN };
        }
      },
    },
  ],
  [
    watchDef.path,
    {
      kind: 'server-streaming',
      decode: watchDef.requestDeserialize,
      encode: watchDef.responseSerialize,
      handle: (_request: unknown, stream: ResponseStream<unknown>) => {
        streams.push(stream);
        stream.write({ status: ServingStatus.SERVING });
        stream.write({ status: ServingStatus.NOT_SERVING });
      },
    },
  ],
]);

async function startTransport(
  logger = createLogger({ level: 'silent' }),
): Promise<{ transport: GrpcTransport; target: string }> {
  const transport = new GrpcTransport({
    methods,
    limits: { ...grpcLimitsSchema.parse({}), maxMessageBytes, maxBufferedBytes: 64 * 1024 },
    logger,
  });
  await new Promise<void>((resolve) => transport.server.listen(0, '127.0.0.1', resolve));
  const { port } = transport.server.address() as AddressInfo;
  return { transport, target: `127.0.0.1:${port}` };
}

interface UnaryOutcome {
  readonly code: number;
  readonly details: string;
  readonly response?: Buffer;
}

/** A unary call of `path` with `body` as the (already serialized) request message. */
function callRaw(
  target: string,
  path: string,
  body: Buffer,
  options: grpc.ChannelOptions = {},
  callOptions: grpc.CallOptions = {},
): Promise<UnaryOutcome> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), options);
  return new Promise<UnaryOutcome>((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      new grpc.Metadata(),
      callOptions,
      (error, response) => {
        client.close();
        resolve(
          error
            ? { code: error.code, details: error.details }
            : { code: 0, details: '', ...(response ? { response } : {}) },
        );
      },
    );
  });
}

interface H2Outcome {
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request with hand-made headers and body over a fresh HTTP/2 connection. */
function h2Request(
  target: string,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer,
): Promise<H2Outcome> {
  const session = http2.connect(`http://${target}`);
  return new Promise<H2Outcome>((resolve, reject) => {
    const request = session.request({ ':method': 'POST', ...headers });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    request.on('response', (h) => (responseHeaders = h));
    request.on('trailers', (t) => (trailers = t));
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    request.on('error', reject);
    request.end(body);
  });
}

const grpcHeaders = (path: string): http2.OutgoingHttpHeaders => ({
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
});

/** grpc-status wherever it came: trailers, or the headers of a trailers-only answer. */
const statusOf = (outcome: H2Outcome): string | undefined =>
  (outcome.trailers['grpc-status'] ?? outcome.headers['grpc-status']) as string | undefined;

describe('gRPC transport', () => {
  let transport: GrpcTransport;
  let target: string;
  before(async () => {
    ({ transport, target } = await startTransport());
  });
  after(async () => {
    await transport.shutdown(100);
  });

  it('answers unary calls whether the handler is synchronous or not', async () => {
    const sync = await callRaw(target, checkDef.path, encodeRequest('sync'));
    assert.equal(sync.code, 0);
    assert.deepEqual(checkDef.responseDeserialize(sync.response ?? Buffer.alloc(0)), {
      status: ServingStatus.SERVING,
    });
    const later = await callRaw(target, checkDef.path, encodeRequest('async'));
    assert.equal(later.code, 0);
    assert.deepEqual(checkDef.responseDeserialize(later.response ?? Buffer.alloc(0)), {
      status: ServingStatus.NOT_SERVING,
    });
  });

  it('ends a call with the status a handler throws or rejects with', async () => {
    const thrown = await callRaw(target, checkDef.path, encodeRequest('not-found'));
    assert.equal(thrown.code, grpc.status.NOT_FOUND);
    // CR/LF in the details travel percent-encoded and never make a header of their own.
    assert.equal(thrown.details, 'no such thing\r\nset-cookie: x=1');
    const raw = await h2Request(
      target,
      grpcHeaders(checkDef.path),
      frameMessage(encodeRequest('not-found')),
    );
    assert.equal(raw.headers['set-cookie'], undefined);
    assert.equal(raw.headers['grpc-message'], 'no such thing%0D%0Aset-cookie: x=1');

    const rejected = await callRaw(target, checkDef.path, encodeRequest('rejects'));
    assert.deepEqual(rejected, { code: grpc.status.UNAVAILABLE, details: 'try later' });
  });

  it('answers UNKNOWN without the error text when a handler fails unexpectedly', async () => {
    const outcome = await callRaw(target, checkDef.path, encodeRequest('bug'));
    assert.equal(outcome.code, grpc.status.UNKNOWN);
    assert.doesNotMatch(outcome.details, /secret/);
  });

  it("answers a method's own status for its unexpected failures", async () => {
    const outcome = await callRaw(target, unexpectedPath, encodeRequest('sync'));
    assert.deepEqual(outcome, {
      code: grpc.status.UNAVAILABLE,
      details: 'no decision could be made',
    });
  });

  it('answers UNIMPLEMENTED for an unknown method', async () => {
    const outcome = await callRaw(target, '/no.Such/Method', encodeRequest('sync'));
    assert.equal(outcome.code, grpc.status.UNIMPLEMENTED);
  });

  it('answers INTERNAL for a message that is not the request type', async () => {
    const outcome = await callRaw(target, checkDef.path, Buffer.from([0x0a, 0xff, 0xff]));
    assert.equal(outcome.code, grpc.status.INTERNAL);
  });

  it('refuses a message over the cap with RESOURCE_EXHAUSTED, then keeps serving', async () => {
    const big = encodeRequest('x'.repeat(maxMessageBytes + 10));
    const outcome = await callRaw(target, checkDef.path, big);
    assert.equal(outcome.code, grpc.status.RESOURCE_EXHAUSTED);
    // A length prefix claiming more than the cap is refused without waiting for the bytes.
    const prefix = Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]);
    const claimed = await h2Request(target, grpcHeaders(checkDef.path), prefix);
    assert.equal(statusOf(claimed), String(GrpcStatus.RESOURCE_EXHAUSTED));
    assert.equal((await callRaw(target, checkDef.path, encodeRequest('sync'))).code, 0);
  });

  it('decompresses gzip messages, and refuses bad or oversized ones', async () => {
    const compressed = await callRaw(target, checkDef.path, encodeRequest('sync'), {
      'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip,
    });
    assert.equal(compressed.code, 0);

    const gz = (message: Buffer): Buffer => {
      const payload = gzipSync(message);
      const frame = Buffer.alloc(5 + payload.length);
      frame[0] = 1;
      frame.writeUInt32BE(payload.length, 1);
      payload.copy(frame, 5);
      return frame;
    };
    const headers = { ...grpcHeaders(checkDef.path), 'grpc-encoding': 'gzip' };
    const ok = await h2Request(target, headers, gz(encodeRequest('sync')));
    assert.equal(statusOf(ok), '0');
    // 1 MiB of zeros compresses to about 1 KiB: a bomb must not be inflated past the cap.
    const bomb = await h2Request(target, headers, gz(Buffer.alloc(1024 * 1024)));
    assert.equal(statusOf(bomb), String(GrpcStatus.RESOURCE_EXHAUSTED));
    const notGzip = Buffer.from([1, 0, 0, 0, 3, 1, 2, 3]);
    assert.equal(statusOf(await h2Request(target, headers, notGzip)), String(GrpcStatus.INTERNAL));
    const flaggedWithoutEncoding = await h2Request(target, grpcHeaders(checkDef.path), notGzip);
    assert.equal(statusOf(flaggedWithoutEncoding), String(GrpcStatus.INTERNAL));
    const brotli = await h2Request(
      target,
      { ...grpcHeaders(checkDef.path), 'grpc-encoding': 'br' },
      notGzip,
    );
    assert.equal(statusOf(brotli), String(GrpcStatus.UNIMPLEMENTED));
    assert.match(String(brotli.headers['grpc-accept-encoding']), /gzip/);
  });

  it('refuses bodies that are not exactly one gRPC message', async () => {
    const one = frameMessage(encodeRequest('sync'));
    const cases: [string, Buffer, number][] = [
      ['empty body', Buffer.alloc(0), GrpcStatus.INTERNAL],
      ['short prefix', Buffer.from([0, 0, 0]), GrpcStatus.INTERNAL],
      ['truncated message', one.subarray(0, one.length - 2), GrpcStatus.INTERNAL],
      ['two messages', Buffer.concat([one, one]), GrpcStatus.UNIMPLEMENTED],
      ['unknown flags', Buffer.from([4, 0, 0, 0, 0]), GrpcStatus.INTERNAL],
    ];
    for (const [what, body, code] of cases) {
      const outcome = await h2Request(target, grpcHeaders(checkDef.path), body);
      assert.equal(statusOf(outcome), String(code), what);
    }
  });

  it('answers 415 to a request that is not gRPC and 405 to one that is not a POST', async () => {
    const json = await h2Request(
      target,
      { ':path': checkDef.path, 'content-type': 'application/json' },
      Buffer.from('{}'),
    );
    assert.equal(json.headers[':status'], 415);
    const session = http2.connect(`http://${target}`);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const request = session.request({ ':method': 'GET', ':path': checkDef.path });
      request.on('response', (h) => resolve(h[':status']));
      request.on('error', reject);
      request.end();
    });
    session.close();
    assert.equal(status, 405);
  });

  it('streams responses until the client cancels, then runs the close listeners', async () => {
    const client = new grpc.Client(target, grpc.credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      watchDef.path,
      watchDef.requestSerialize,
      watchDef.responseDeserialize,
      { service: '' },
    );
    const seen: unknown[] = [];
    await new Promise<void>((resolve) => {
      call.on('data', (message) => {
        seen.push(message);
        if (seen.length === 2) resolve();
      });
    });
    assert.deepEqual(seen, [
      { status: ServingStatus.SERVING },
      { status: ServingStatus.NOT_SERVING },
    ]);
    const stream = streams.at(-1);
    assert.ok(stream);
    const closed = new Promise<void>((resolve) => stream.onClose(resolve));
    call.on('error', () => {});
    call.cancel();
    await closed;
    client.close();
  });

  /** A `held` call with the client's `deadline`, answered when `heldRelease` runs. */
  function heldRequest(deadline: Date | undefined): Promise<UnaryOutcome> {
    heldCall = undefined;
    return callRaw(target, checkDef!.path, encodeRequest('held'), {}, deadline ? { deadline } : {});
  }

  it("gives the handler the client's grpc-timeout as a deadline, and the stream's end as gone", async () => {
    const sent = performance.now();
    const outcome = heldRequest(new Date(Date.now() + 60_000));
    await waitFor('the held call', () => heldCall !== undefined);
    const call = heldCall!;
    assert.ok(call.deadline !== undefined, 'a deadline');
    const left = call.deadline - sent;
    // grpc-js rounds the timeout it sends up to its unit; the two clocks differ by a few ms.
    assert.ok(left > 50_000 && left <= 60_050, `deadline ${left} ms after sending`);
    assert.equal(call.gone, false);
    heldRelease!();
    assert.equal((await outcome).code, 0);
    await waitFor('the call to be gone', () => call.gone);
  });

  it('has no deadline for a client that sent none', async () => {
    const outcome = heldRequest(undefined);
    await waitFor('the held call', () => heldCall !== undefined);
    assert.equal(heldCall!.deadline, undefined);
    heldRelease!();
    assert.equal((await outcome).code, 0);
  });

  it('marks the call gone when the client gives up at its deadline', async () => {
    const outcome = heldRequest(new Date(Date.now() + 150));
    await waitFor('the held call', () => heldCall !== undefined);
    const call = heldCall!;
    assert.equal((await outcome).code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor('the call to be gone', () => call.gone);
    heldRelease!();
  });

  it('refuses a malformed grpc-timeout with INTERNAL, as gRPC servers do', async () => {
    for (const value of ['123456789m', '10x', '-1S', '1.5S', 'S', '']) {
      const answer = await h2Request(
        target,
        { ...grpcHeaders(checkDef.path), 'grpc-timeout': value },
        frameMessage(encodeRequest('sync')),
      );
      assert.equal(statusOf(answer), String(grpc.status.INTERNAL), value);
    }
    const good = await h2Request(
      target,
      { ...grpcHeaders(checkDef.path), 'grpc-timeout': '99999999H' },
      frameMessage(encodeRequest('sync')),
    );
    assert.equal(statusOf(good), '0');
  });

  it('reads every unit of grpc-timeout', () => {
    assert.equal(grpcTimeoutMs('2H'), 7_200_000);
    assert.equal(grpcTimeoutMs('3M'), 180_000);
    assert.equal(grpcTimeoutMs('200S'), 200_000);
    assert.equal(grpcTimeoutMs('199m'), 199);
    assert.equal(grpcTimeoutMs('1500u'), 1.5);
    assert.equal(grpcTimeoutMs('2000000n'), 2);
    assert.equal(grpcTimeoutMs('0m'), 0);
    assert.equal(grpcTimeoutMs('1s'), undefined);
    assert.equal(grpcTimeoutMs(' 1S'), undefined);
  });
});

describe('gRPC transport refusals', () => {
  const log = captureLog('info');
  let transport: GrpcTransport;
  let target: string;
  before(async () => {
    ({ transport, target } = await startTransport(log.logger));
  });
  after(async () => {
    await transport.shutdown(100);
  });

  const rows = [
    { body: encodeRequest('x'.repeat(maxMessageBytes + 10)), reason: 'request message too large' },
    { body: Buffer.from([0, 0, 0]), reason: 'request body is not a gRPC message' },
    { body: Buffer.from([0, 0, 0, 0, 9, 1]), reason: 'request message truncated' },
    { body: frameMessage(Buffer.from([0xff])), reason: 'request message could not be decoded' },
  ];
  for (const { body, reason } of rows) {
    it(`leaves one log line for a request refused before decoding: ${reason}`, async () => {
      const before = log.lines().length;
      const answer = await h2Request(target, grpcHeaders(checkDef.path), body);
      assert.notEqual(statusOf(answer), '0');
      const lines = log.lines().slice(before);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.equal(lines[0]!['reason'], reason);
      assert.equal(lines[0]!['grpcStatus'], Number(statusOf(answer)));
    });
  }
});

describe('gRPC transport shutdown', () => {
  it('ends streams with OK, lets calls in flight finish, and refuses new connections', async () => {
    const { transport, target } = await startTransport();
    const client = new grpc.Client(target, grpc.credentials.createInsecure());
    const watch = client.makeServerStreamRequest(
      watchDef.path,
      watchDef.requestSerialize,
      watchDef.responseDeserialize,
      { service: '' },
    );
    watch.on('data', () => {});
    const watchStatus = new Promise<number>((resolve) =>
      watch.on('status', (s) => resolve(s.code)),
    );
    const slow = callRaw(target, checkDef.path, encodeRequest('slow'));
    while (slowRelease === undefined) await new Promise((r) => setTimeout(r, 5));

    const stopped = transport.shutdown(5000);
    assert.equal(await watchStatus, grpc.status.OK);
    slowRelease();
    slowRelease = undefined;
    assert.equal((await slow).code, 0, 'the call in flight was answered');
    await stopped;
    client.close();

    const after = await callRaw(target, checkDef.path, encodeRequest('sync'), {
      'grpc.initial_reconnect_backoff_ms': 50,
    });
    assert.equal(after.code, grpc.status.UNAVAILABLE);
  });

  it('closes connections still busy when the drain timeout passes', async () => {
    const { transport, target } = await startTransport();
    const slow = callRaw(target, checkDef.path, encodeRequest('slow'));
    while (slowRelease === undefined) await new Promise((r) => setTimeout(r, 5));
    const started = Date.now();
    await transport.shutdown(100);
    assert.ok(Date.now() - started < 2000);
    assert.equal((await slow).code, grpc.status.UNAVAILABLE);
    slowRelease = undefined;
  });

  it('survives a client that goes away before its answer', async () => {
    const { transport, target } = await startTransport();
    const client = new grpc.Client(target, grpc.credentials.createInsecure());
    const answered = new Promise<number>((resolve) => {
      const call = client.makeUnaryRequest(
        checkDef.path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        encodeRequest('slow'),
        (error) => resolve(error?.code ?? 0),
      );
      setTimeout(() => call.cancel(), 50);
    });
    assert.equal(await answered, grpc.status.CANCELLED);
    slowRelease?.();
    slowRelease = undefined;
    assert.equal((await callRaw(target, checkDef.path, encodeRequest('sync'))).code, 0);
    client.close();
    await transport.shutdown(100);
  });
});
