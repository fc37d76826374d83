/** The bench's load generator counts every answer, cycles its frames and reports gRPC errors. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad, runLoadProcess, splitFrames } from '../../bench/grpc-load.ts';
import { grpcLimitsSchema } from '../../src/config/schema.ts';
import { GrpcError, GrpcStatus, GrpcTransport } from '../../src/server/grpc-transport.ts';
import { createLogger } from '../../src/observability/logger.ts';

const path = '/bench.Echo/Call';

/** A gRPC frame whose message is `text` as bytes. */
function frame(text: string): Buffer {
  const message = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** An open-loop run of one frame: `rate` calls a second for `seconds`. */
function openLoop(target: string, connections: number, seconds: number, rate: number) {
  return runLoad({ target, path, connections, streams: 1, seconds, rate, frames: [frame('x')] });
}

describe('bench load generator', () => {
  /** Every message the server received, in order of arrival. */
  const received: string[] = [];
  let transport: GrpcTransport;
  let target = '';

  before(async () => {
    transport = new GrpcTransport({
      methods: new Map([
        [
          path,
          {
            kind: 'unary',
            decode: (bytes: Buffer) => bytes.toString('utf8'),
            encode: (text: string) => Buffer.from(text, 'utf8'),
            handle: (text: string) => {
              received.push(text);
              // A frame the server refuses: the generator must count it under its status.
              if (text.startsWith('refuse')) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'no');
              return text;
            },
          },
        ],
      ]),
      limits: grpcLimitsSchema.parse({}),
      logger: createLogger({ level: 'silent' }),
    });
    await new Promise<void>((resolve) => transport.server.listen(0, '127.0.0.1', resolve));
    const address = transport.server.address();
    target = `127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  after(() => transport.shutdown(0));

  it('counts every answer the server gave, by grpc-status and label, and cycles the frames', async () => {
    received.length = 0;
    const frames = ['a', 'b', 'c', 'refuse-d', 'é-ü-名前'].map(frame);
    const labels = ['allow', 'allow', 'login', 'refused', 'allow'];
    const result = await runLoad({
      target,
      path,
      connections: 2,
      streams: 3,
      seconds: 0.3,
      frames,
      labels,
    });
    assert.ok(result.calls > 20, `only ${result.calls} calls`);
    assert.equal(result.calls, received.length);
    assert.equal(result.errors, 0);
    assert.equal(result.httpErrors, 0);
    const refused = received.filter((t) => t.startsWith('refuse')).length;
    assert.deepEqual(result.byGrpcStatus, {
      '0': received.length - refused,
      [String(GrpcStatus.UNAVAILABLE)]: refused,
    });
    // Sent in turn: the frame counts differ by at most one, and refused answers have no label.
    const counts = ['a', 'b', 'c', 'refuse-d', 'é-ü-名前'].map(
      (t) => received.filter((r) => r === t).length,
    );
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts.join(',')}`);
    assert.equal(result.byLabel['login'], counts[2]);
    assert.equal(result.byLabel['allow'], counts[0]! + counts[1]! + counts[4]!);
    assert.equal(result.byLabel['refused'], undefined);
    assert.equal(result.nextFrame, received.length % frames.length);
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p999);
  });

  it('carries on through the rotation from startAt', async () => {
    received.length = 0;
    const result = await runLoad({
      target,
      path,
      connections: 1,
      streams: 1,
      seconds: 0.1,
      frames: ['a', 'b', 'c'].map(frame),
      startAt: 2,
    });
    assert.deepEqual(received.slice(0, 4), ['c', 'a', 'b', 'c']);
    assert.equal(result.calls, received.length);
  });

  it('sends each frame at most once when told, and says when they ran out', async () => {
    for (const rate of [undefined, 400]) {
      received.length = 0;
      const frames = ['p1', 'p2', 'p3', 'p4', 'p5'].map(frame);
      const result = await runLoad({
        target,
        path,
        connections: 2,
        streams: 3,
        seconds: 0.2,
        ...(rate === undefined ? {} : { rate }),
        frames,
        once: true,
      });
      assert.deepEqual([...received].sort(), ['p1', 'p2', 'p3', 'p4', 'p5'], `rate ${rate}`);
      assert.equal(result.calls, 5);
      assert.equal(result.exhausted, true);
    }
    // Enough frames for the run: not exhausted, none sent twice.
    received.length = 0;
    const plenty = Array.from({ length: 200 }, (_, i) => frame(`q${i}`));
    const result = await runLoad({
      target,
      path,
      connections: 1,
      streams: 1,
      seconds: 0.2,
      rate: 100,
      frames: plenty,
      once: true,
    });
    assert.equal(result.exhausted, false);
    assert.equal(result.calls, 20);
    assert.equal(new Set(received).size, received.length);
  });

  it('keeps to a target rate, open loop', async () => {
    received.length = 0;
    const result = await openLoop(target, 2, 0.5, 200);
    assert.equal(result.calls, 100);
    assert.equal(received.length, 100);
  });

  it("sends every call due within the server's stream limit, a late one timed from when it was due", async () => {
    // A server that takes 50 ms a call and allows 4 streams a connection: 80 calls/s each.
    let open = 0;
    let most = 0;
    const slow = new GrpcTransport({
      methods: new Map([
        [
          path,
          {
            kind: 'unary',
            decode: (bytes: Buffer) => bytes.toString('utf8'),
            encode: (text: string) => Buffer.from(text, 'utf8'),
            handle: async (text: string) => {
              open += 1;
              most = Math.max(most, open);
              await new Promise((resolve) => setTimeout(resolve, 50));
              open -= 1;
              return text;
            },
          },
        ],
      ]),
      limits: { ...grpcLimitsSchema.parse({}), maxConcurrentStreams: 4 },
      logger: createLogger({ level: 'silent' }),
    });
    await new Promise<void>((resolve) => slow.server.listen(0, '127.0.0.1', resolve));
    try {
      const address = slow.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      // 200 calls due in half a second, 2.5 times what two connections can take.
      const result = await openLoop(`127.0.0.1:${port}`, 2, 0.5, 400);
      assert.equal(result.calls, 200, 'every call due was sent');
      assert.equal(result.errors, 0, 'none refused or lost');
      assert.ok(most <= 8, `${most} calls at once on two connections of 4 streams`);
      // The last calls waited for a stream: their latency counts from when they were due.
      assert.ok(result.latencyMs.max >= 500, `the longest call took ${result.latencyMs.max} ms`);
    } finally {
      await slow.shutdown(0);
    }
  });

  // Node's client, handed such a backlog at once, opens more streams than the server allows and
  // the server cuts the connection off: the run then never ends, hence the timeout.
  it(
    "sends a backlog far beyond every connection's streams without losing a call",
    { timeout: 60_000 },
    async () => {
      // 20,000 calls due within 0.2 s on one connection: more than the server can take at once.
      const result = await openLoop(target, 1, 0.2, 100_000);
      assert.equal(result.calls, 20_000, 'every call due was sent');
      assert.equal(result.errors, 0, 'none refused or lost');
    },
  );

  it('counts calls that get no answer as errors, never as answers', async () => {
    // A path the server does not serve answers UNIMPLEMENTED; a closed port is refused outright.
    const unknown = await runLoad({
      target,
      path: '/bench.Echo/Missing',
      connections: 1,
      streams: 2,
      seconds: 0.1,
      frames: [frame('x')],
      labels: ['allow'],
    });
    assert.deepEqual(Object.keys(unknown.byGrpcStatus), [String(GrpcStatus.UNIMPLEMENTED)]);
    assert.deepEqual(unknown.byLabel, {});
    await assert.rejects(
      runLoad({
        target: '127.0.0.1:1',
        connections: 1,
        streams: 1,
        seconds: 0.1,
        frames: [frame('x')],
      }),
    );
  });

  it('splits concatenated frames and refuses a truncated one', () => {
    const frames = ['a', '', 'ccc'].map(frame);
    assert.deepEqual(splitFrames(Buffer.concat(frames)), frames);
    assert.throws(() => splitFrames(Buffer.concat(frames).subarray(0, 17)), /truncated/);
  });

  it('runs in a process of its own with the frames in a file', async () => {
    received.length = 0;
    const dir = mkdtempSync(join(tmpdir(), 'eoa-load-'));
    try {
      const framesFile = join(dir, 'frames.grpc');
      writeFileSync(framesFile, Buffer.concat(['p', 'q'].map(frame)));
      const result = await runLoadProcess(
        { target, path, connections: 1, streams: 2, seconds: 0.2, framesFile, labels: ['p', 'q'] },
        join(dir, 'job.json'),
      );
      assert.equal(result.calls, received.length);
      assert.equal((result.byLabel['p'] ?? 0) + (result.byLabel['q'] ?? 0), result.calls);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
