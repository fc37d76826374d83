/**
 * Transport floods against the gRPC listener: each row an attack and its safe outcome. The
 * server runs as a child process (its RSS read from /proc), attacked over loopback with
 * `node:http2` and with hand-made frames; meanwhile an Envoy-like client on its own connection
 * must still get its Checks answered.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { grpcFrame } from '../../bench/grpc-frame.ts';
import { h2loadVersion, runH2load } from '../../bench/h2load.ts';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { EnvoyClient, normaliseRequest } from '../support/envoy-client.ts';
import {
  FrameType,
  RawH2Connection,
  dataFrame,
  frame,
  grpcRequestHeaders,
  rstStream,
} from '../support/raw-h2.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';
import { testSessionSecret } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const checkPath = '/envoy.service.auth.v3.Authorization/Check';
const MiB = 1024 * 1024;
/** The schema's defaults, restated: the memory rows run against them. */
const defaults = {
  maxConcurrentStreams: 256,
  maxMessageBytes: 4 * MiB,
  maxBufferedBytes: 64 * MiB,
  maxHeaderListBytes: 65_536,
};
/** The second server: small numbers and short timeouts, so timeouts are seen in the test. */
const tight = {
  maxConcurrentStreams: 10,
  maxConnections: 20,
  headersTimeout: '200ms',
  requestTimeout: '300ms',
  idleTimeout: '200ms',
};
const GrpcStatus = { RESOURCE_EXHAUSTED: 8, DEADLINE_EXCEEDED: 4 } as const;
const CANCEL = 8;
const ENHANCE_YOUR_CALM = 11;

let provider: TestProvider;
/** Default limits. */
let roomy: ServerProcess;
/** The `tight` limits. */
let strict: ServerProcess;
let envoy: EnvoyClient;
let serversStarted = false;

function serverDocument(limits: Record<string, unknown>): Record<string, unknown> {
  return {
    log: { level: 'warn' },
    limits: { grpc: limits },
    apps: [
      {
        name: 'app',
        match: { hosts: ['app.example.com'] },
        oidc: { issuer: provider.issuer, clientId: 'app', clientSecret: 's' },
        session: { secrets: [testSessionSecret] },
        publicPaths: [{ prefix: '/public/' }],
      },
    ],
  };
}

/** Rejects when `promise` has not settled within `ms`: a bound on a wait, never a pause. */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** Resolves once the server has logged a line matching `pattern`. */
async function logged(server: ServerProcess, pattern: RegExp): Promise<void> {
  const stdout = server.child.stdout;
  if (stdout === null) throw new Error('server stdout not piped');
  while (!pattern.test(server.output())) await once(stdout, 'data');
}

/** A Check Envoy sends for a public path, on the Envoy client's own connection: it must be allowed. */
async function checkStillAnswered(): Promise<void> {
  const outcome = await envoy.check({ url: 'http://app.example.com/public/ping' });
  assert.equal(
    outcome.kind,
    'allow',
    `a Check on another connection was not answered: ${JSON.stringify(outcome)}`,
  );
}

/** The 5-byte gRPC prefix declaring a message of `length` bytes. */
function prefix(length: number, compressed = false): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(length, 1);
  return head;
}

interface CallOutcome {
  /** `grpc-status` of a trailers-only answer, or of the trailers. */
  readonly grpcStatus: number | undefined;
  /** The stream was reset by the server, with this code. */
  readonly rstCode: number | undefined;
}

/** Opens one call of `path` on `session`, writes `body` without ending it unless told. */
function openCall(
  session: http2.ClientHttp2Session,
  body: Buffer,
  options: { end?: boolean; headers?: http2.OutgoingHttpHeaders } = {},
): { stream: http2.ClientHttp2Stream; written: Promise<void>; outcome: Promise<CallOutcome> } {
  const stream = session.request(
    {
      ':method': 'POST',
      ':path': checkPath,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...options.headers,
    },
    { endStream: false },
  );
  stream.on('error', () => {});
  let grpcStatus: number | undefined;
  const read = (headers: http2.IncomingHttpHeaders): void => {
    const value = headers['grpc-status'];
    if (typeof value === 'string') grpcStatus = Number(value);
  };
  stream.on('response', read);
  stream.on('trailers', read);
  stream.resume();
  const outcome = new Promise<CallOutcome>((resolve) =>
    stream.once('close', () =>
      resolve({
        grpcStatus,
        rstCode: stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? undefined : stream.rstCode,
      }),
    ),
  );
  // Settled when the bytes went out, or when the server answered first (it refused them).
  const written = new Promise<void>((resolve) => {
    stream.once('response', () => resolve());
    stream.once('close', () => resolve());
    if (options.end === true) stream.end(body, () => resolve());
    else stream.write(body, () => resolve());
  });
  return { stream, written, outcome };
}

function connectTo(server: ServerProcess): http2.ClientHttp2Session {
  // The client counts the bytes it has yet to send against its own session memory (10 MB by
  // default) and stalls past it; an attacker raises it, so the test does too.
  const session = http2.connect(`http://${server.grpcTarget}`, { maxSessionMemory: 4096 });
  session.on('error', () => {});
  return session;
}

/**
 * Opens `count` unfinished calls over `connections` connections, each declaring `declared`
 * bytes and sending `sent` of them; returns once every byte went out or was refused.
 */
async function unfinishedStreams(
  server: ServerProcess,
  count: number,
  connections: number,
  declared: number,
  sent: number,
): Promise<{
  sessions: http2.ClientHttp2Session[];
  outcomes: Promise<CallOutcome>[];
}> {
  const body = Buffer.concat([prefix(declared), Buffer.alloc(sent - 5, 0x61)]);
  const sessions = Array.from({ length: connections }, () => connectTo(server));
  await Promise.all(sessions.map((s) => once(s, 'remoteSettings')));
  const calls = Array.from({ length: count }, (_, i) =>
    openCall(sessions[i % connections] as http2.ClientHttp2Session, body),
  );
  await within(30_000, Promise.all(calls.map((c) => c.written)), 'sending the unfinished streams');
  return { sessions, outcomes: calls.map((c) => c.outcome) };
}

async function closeAll(sessions: readonly http2.ClientHttp2Session[]): Promise<void> {
  await Promise.all(
    sessions.map((s) => {
      const closed = once(s, 'close');
      s.destroy();
      return closed;
    }),
  );
}

/**
 * 1,000 unfinished calls declaring `declared` bytes and sending `sent` of them, against the
 * server with default limits: its RSS must stay within 200 MiB of what it was before, and a
 * Check on the Envoy client's connection must be answered while they are open. Returns how
 * many calls the server held (those it did not refuse).
 */
async function floodWithUnfinishedStreams(
  t: { diagnostic(message: string): void },
  declared: number,
  sent: number,
): Promise<number> {
  await checkStillAnswered();
  const baseline = roomy.rss();
  const { sessions, outcomes } = await unfinishedStreams(roomy, 1000, 8, declared, sent + 5);
  const during = roomy.rss();
  await checkStillAnswered();
  await closeAll(sessions);
  const results = await Promise.all(outcomes);
  const refused = results.filter((r) => r.grpcStatus === GrpcStatus.RESOURCE_EXHAUSTED).length;
  t.diagnostic(
    `RSS ${baseline >> 20} MiB before, ${during >> 20} MiB with 1,000 unfinished streams of ${declared >> 20} MiB (${(sent / MiB).toFixed(2)} MiB sent); ${1000 - refused} held`,
  );
  assert.ok(during - baseline < 200 * MiB, `RSS grew by ${(during - baseline) >> 20} MiB`);
  return 1000 - refused;
}

interface Row {
  readonly attack: string;
  readonly outcome: string;
  readonly run: (t: { diagnostic(message: string): void }) => Promise<void>;
}

const rows: readonly Row[] = [
  {
    attack: 'the advertised settings, read by a node:http2 client',
    outcome: 'SETTINGS_MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE are the configured limits',
    run: async () => {
      const session = connectTo(roomy);
      const [settings] = (await once(session, 'remoteSettings')) as [http2.Settings];
      assert.equal(settings.maxConcurrentStreams, defaults.maxConcurrentStreams);
      assert.equal(settings.maxHeaderListSize, defaults.maxHeaderListBytes);
      await closeAll([session]);
    },
  },
  {
    attack:
      '1,000 unfinished streams on 8 connections, each declaring a 4 MiB message (the cap) and sending all of it but 1 byte',
    outcome:
      'the budget holds 64 MiB of them (15), the others get RESOURCE_EXHAUSTED; RSS within 200 MiB of baseline; a Check on another connection still answered',
    run: async (t) => {
      const held = await floodWithUnfinishedStreams(t, 4 * MiB, 4 * MiB - 1);
      assert.ok(held <= Math.floor(defaults.maxBufferedBytes / (4 * MiB + 5)), `${held} held`);
    },
  },
  {
    attack:
      '1,000 unfinished streams on 8 connections, each declaring 16 MiB (over the cap) and sending 1 MiB',
    outcome:
      'every one refused with RESOURCE_EXHAUSTED when its length prefix arrives; RSS within 200 MiB of baseline; Checks still answered',
    run: async (t) => {
      assert.equal(await floodWithUnfinishedStreams(t, 16 * MiB, MiB), 0);
    },
  },
  {
    attack: 'a declared message length over the cap (16 MiB), nothing more sent',
    outcome: 'RESOURCE_EXHAUSTED at once, not after waiting for the bytes',
    run: async () => {
      const session = connectTo(roomy);
      const call = openCall(session, prefix(16 * MiB));
      assert.equal(
        (await within(5000, call.outcome, 'the refusal')).grpcStatus,
        GrpcStatus.RESOURCE_EXHAUSTED,
      );
      await closeAll([session]);
    },
  },
  {
    attack:
      'a gzip bomb: grpc-encoding gzip, 100 members of 8 MiB of zeros (800 MiB inflated) in 0.8 MiB',
    outcome: 'RESOURCE_EXHAUSTED; inflation stops at the cap (RSS grows by far less than 800 MiB)',
    run: async () => {
      const member = gzipSync(Buffer.alloc(8 * MiB));
      const bomb = Buffer.concat(Array.from({ length: 100 }, () => member));
      assert.ok(bomb.length + 5 < defaults.maxMessageBytes, 'the bomb itself fits the cap');
      const baseline = roomy.rss();
      const session = connectTo(roomy);
      const call = openCall(session, Buffer.concat([prefix(bomb.length, true), bomb]), {
        end: true,
        headers: { 'grpc-encoding': 'gzip' },
      });
      assert.equal(
        (await within(10_000, call.outcome, 'the refusal')).grpcStatus,
        GrpcStatus.RESOURCE_EXHAUSTED,
      );
      assert.ok(roomy.rss() - baseline < 200 * MiB, 'the bomb was not inflated whole');
      await closeAll([session]);
      await checkStillAnswered();
    },
  },
  {
    attack: 'rapid reset (CVE-2023-44487): 5,000 × HEADERS then RST_STREAM on one connection',
    outcome:
      'the connection is closed with ENHANCE_YOUR_CALM after a bounded number of streams; Checks still answered',
    run: async () => {
      const connection = await RawH2Connection.open(roomy.ports.grpc);
      const headers = grpcRequestHeaders(checkPath);
      for (let i = 0; i < 5000 && !connection.socket.destroyed; i++) {
        const id = 1 + 2 * i;
        connection.write(Buffer.concat([connection.headers(id, headers), rstStream(id, CANCEL)]));
      }
      await within(10_000, connection.closed, 'closing the connection');
      await within(5000, logged(roomy, /too many streams reset/), 'the log line');
      // The GOAWAY may be lost to the TCP reset of a socket closed with unread bytes in it.
      const goaway = connection.received(FrameType.GOAWAY)[0];
      if (goaway !== undefined) {
        assert.equal(connection.goawayCode(), ENHANCE_YOUR_CALM);
        const lastStream = goaway.payload.readUInt32BE(0);
        assert.ok(lastStream < 2 * 1000, `the server took ${(lastStream + 1) / 2} streams`);
      }
      await checkStillAnswered();
    },
  },
  {
    attack: 'more streams at once than SETTINGS_MAX_CONCURRENT_STREAMS (10), with raw frames',
    outcome:
      'no stream past the 10th is taken: the connection ends with GOAWAY naming stream 19 at most',
    run: async () => {
      const connection = await RawH2Connection.open(strict.ports.grpc);
      await connection.waitFor((f) => f.type === FrameType.SETTINGS);
      const headers = grpcRequestHeaders(checkPath);
      for (let i = 0; i < 30; i++) connection.write(connection.headers(1 + 2 * i, headers));
      await within(5000, connection.closed, 'closing the connection');
      // No stream past the 10th was answered.
      const answered = connection.received(FrameType.HEADERS).map((f) => f.streamId);
      assert.ok(
        answered.every((id) => id <= 19),
        `answered: ${answered.join(', ')}`,
      );
      // The GOAWAY itself can be lost when the server's close races the client's unread frames
      // (a TCP reset discards what the client had not read yet); when it arrives, it says so.
      const goaway = connection.received(FrameType.GOAWAY)[0];
      if (goaway !== undefined) {
        assert.notEqual(goaway.payload.readUInt32BE(4), 0, 'with an error code');
        assert.ok(goaway.payload.readUInt32BE(0) <= 19, 'no stream past the 10th processed');
      }
    },
  },
  {
    attack: 'a header block over 64 KiB (HEADERS + CONTINUATION)',
    outcome:
      'refused before any handler (GOAWAY), and the connection is closed by the header timeout',
    run: async () => {
      const connection = await RawH2Connection.open(strict.ports.grpc);
      const block = grpcRequestHeaders(checkPath, [['x-big', 'a'.repeat(70_000)]]);
      const parts: Buffer[] = [];
      for (let offset = 0; offset < block.length; offset += 16_384)
        parts.push(block.subarray(offset, offset + 16_384));
      parts.forEach((part, i) => {
        const last = i === parts.length - 1 ? 0x4 : 0;
        connection.write(
          frame(i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, last, 1, part),
        );
      });
      await within(5000, connection.closed, 'closing the connection');
      assert.notEqual(connection.goawayCode(), undefined, 'GOAWAY sent');
      assert.equal(connection.received(FrameType.HEADERS).length, 0, 'no answer: never handled');
    },
  },
  {
    attack: 'slow headers: HEADERS without END_HEADERS, the block never finished',
    outcome: 'the connection is closed by the header timeout',
    run: async () => {
      const connection = await RawH2Connection.open(strict.ports.grpc);
      connection.write(connection.headers(1, grpcRequestHeaders(checkPath), { endHeaders: false }));
      await within(5000, connection.closed, 'closing the connection');
    },
  },
  {
    attack: 'slow body: a call declaring 1 KiB that sends 10 bytes and then nothing',
    outcome: 'DEADLINE_EXCEEDED after the request timeout, the bytes released',
    run: async () => {
      const session = connectTo(strict);
      const call = openCall(session, Buffer.concat([prefix(1024), Buffer.alloc(5)]));
      const outcome = await within(5000, call.outcome, 'ending the call');
      assert.equal(outcome.grpcStatus, GrpcStatus.DEADLINE_EXCEEDED);
      await closeAll([session]);
    },
  },
  {
    attack: 'slow body: DATA frames of 1 byte, each sent as the PING before it is answered',
    outcome: 'the call still ends after the request timeout: activity does not extend it',
    run: async () => {
      const connection = await RawH2Connection.open(strict.ports.grpc);
      connection.write(connection.headers(1, grpcRequestHeaders(checkPath)));
      connection.write(dataFrame(1, prefix(64 * 1024)));
      // A byte and a PING each time the server answers a PING: the connection is never quiet.
      // Bounded to 50,000 bytes (under the declared 64 KiB); the server must end the call first.
      let sent = 0;
      const ping = frame(FrameType.PING, 0, 0, Buffer.alloc(8));
      connection.socket.on('data', () => {
        if (sent++ < 50_000)
          connection.write(Buffer.concat([dataFrame(1, Buffer.from([0x61])), ping]));
      });
      connection.write(ping);
      const ended = await within(
        5000,
        connection.waitFor(
          (f) =>
            f.streamId === 1 && (f.type === FrameType.HEADERS || f.type === FrameType.RST_STREAM),
        ),
        'ending the call',
      );
      assert.ok(ended !== undefined, 'the server ended the call');
      assert.ok(sent > 1, 'the client kept sending');
      connection.destroy();
    },
  },
  {
    attack: '20 connections that complete a handshake and then stay idle',
    outcome: 'each closed by the server (idle or header timeout), none left open',
    run: async () => {
      const connections = await Promise.all(
        Array.from({ length: 20 }, () => RawH2Connection.open(strict.ports.grpc)),
      );
      await within(5000, Promise.all(connections.map((c) => c.closed)), 'closing them all');
    },
  },
  {
    attack: '10 connections that each finish one Check and then stay idle',
    outcome: 'GOAWAY then closed by the idle timeout',
    run: async () => {
      const sessions = Array.from({ length: 10 }, () => connectTo(strict));
      const goaways = sessions.map((s) => once(s, 'goaway'));
      const closes = sessions.map((s) => once(s, 'close'));
      await Promise.all(
        sessions.map(
          (s) =>
            openCall(s, Buffer.concat([prefix(3), Buffer.from([0x0a, 0x01, 0x61])]), { end: true })
              .outcome,
        ),
      );
      await within(
        5000,
        Promise.all([...goaways, ...closes]),
        'GOAWAY and close on every connection',
      );
    },
  },
  {
    attack: '40 connections at once against maxConnections 20',
    outcome: 'those past the cap are closed on accept, before any HTTP/2 frame',
    run: async () => {
      const connections = await Promise.all(
        Array.from({ length: 40 }, () => RawH2Connection.open(strict.ports.grpc)),
      );
      await within(5000, Promise.all(connections.map((c) => c.closed)), 'closing them all');
      const unheard = connections.filter((c) => c.frames.length === 0).length;
      assert.ok(unheard >= 20, `${unheard} connections closed without a frame`);
    },
  },
  {
    attack:
      'h2load (nghttp2) sending real gRPC Checks, 4 connections × 512 streams (over the 256 advertised)',
    outcome: 'every request answered: a real client honours the advertised limit',
    run: async (t) => {
      if (h2loadVersion() === undefined) throw new Error('h2load is missing (nghttp2-client)');
      const protos = loadUpstreamProtos();
      const request = envoy.buildCheckRequest(
        normaliseRequest({ url: 'http://app.example.com/public/x' }),
      );
      const frameFile = join(tmpdir(), `eoa-floods-${process.pid}.bin`);
      writeFileSync(frameFile, grpcFrame(protos, request));
      const result = await runH2load({
        url: `http://${roomy.grpcTarget}${checkPath}`,
        frameFile,
        clients: 4,
        streams: 512,
        seconds: 2,
      });
      t.diagnostic(`h2load: ${result.done} requests, ${Math.round(result.rps)} req/s`);
      assert.ok(result.done > 0);
      assert.equal(result.failed + result.errored, 0, 'no request failed');
      assert.ok(result.status2xx >= result.done, 'every request done was answered 200');
    },
  },
];

describe('transport floods against the gRPC listener', () => {
  before(async () => {
    provider = await startTestProvider({ clients: [] });
    const started = await Promise.allSettled([
      spawnServer(serverDocument({})),
      spawnServer(serverDocument(tight)),
    ]);
    // A server that failed to start fails the file; the one that did start must not outlive it.
    const failed = started.find((result) => result.status === 'rejected');
    if (failed !== undefined) {
      for (const result of started) if (result.status === 'fulfilled') await result.value.stop();
      await provider.close();
      throw failed.reason;
    }
    [roomy, strict] = started.map(
      (result) => (result as PromiseFulfilledResult<ServerProcess>).value,
    ) as [ServerProcess, ServerProcess];
    envoy = new EnvoyClient({ target: roomy.grpcTarget, timeoutMs: 5000 });
    serversStarted = true;
  });
  after(async () => {
    if (!serversStarted) return;
    envoy.close();
    await Promise.all([roomy.stop(), strict.stop()]);
    await provider.close();
  });

  for (const row of rows) {
    it(`${row.attack} → ${row.outcome}`, (t) => row.run(t));
  }
});
