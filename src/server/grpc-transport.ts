/**
 * A small gRPC server on `node:http2`: unary and server-streaming methods, identity/gzip/deflate
 * message encodings, a message size cap, status in trailers, graceful drain.
 *
 * Why not grpc-js's server: per call it spends about as much CPU as our whole hot decision
 * (metadata objects, interceptors, call state machines we do not use). Envoy's ext_authz
 * client needs only what is here: one length-prefixed message per request over HTTP/2 with
 * prior knowledge, and `grpc-status` in the trailers of the answer.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { gunzipSync, inflateSync } from 'node:zlib';
import type { Logger } from '../observability/logger.ts';
import { BufferBudget } from './buffer-budget.ts';
import { ExpirySweeper } from './expiry-sweeper.ts';
import { RequestMessage, type MessageProblem } from './request-message.ts';

/** The gRPC status codes this server sends. */
export const GrpcStatus = {
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** Thrown (or rejected with) by a handler to end the call with a status other than OK. */
export class GrpcError extends Error {
  readonly code: GrpcStatusCode;
  readonly details: string;

  constructor(code: GrpcStatusCode, details: string) {
    super(details);
    this.name = 'GrpcError';
    this.code = code;
    this.details = details;
  }
}

/** What a unary handler knows of its call besides the request. */
export interface UnaryCall {
  /**
   * When the client stops waiting (its `grpc-timeout` from the call's arrival), on
   * `performance.now()`'s clock; undefined without one.
   */
  readonly deadline: number | undefined;
  /** True once the stream closed: the client went away (cancel, deadline) or was answered. */
  readonly gone: boolean;
}

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * A `grpc-timeout` header in ms (gRPC PROTOCOL-HTTP2: a positive integer of at most 8 digits,
 * then `H`, `M`, `S`, `m`, `u` or `n`); undefined when it is not one.
 */
export function grpcTimeoutMs(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
}

/** A method answering one request with one response. */
export interface UnaryMethod<Req, Res> {
  readonly kind: 'unary';
  readonly decode: (bytes: Buffer) => Req;
  readonly encode: (response: Res) => Uint8Array;
  /** The response, synchronously when it needs no I/O. */
  readonly handle: (request: Req, call: UnaryCall) => Res | Promise<Res>;
  /** The status for a failure that is not a {@link GrpcError}; else it is logged and UNKNOWN. */
  readonly unexpected?: GrpcError;
}

/** The sending half of a server-streaming call. */
export interface ResponseStream<Res> {
  write(response: Res): void;
  /** Ends the call with OK. */
  end(): void;
  /** Runs `listener` once when the call ends, from either side. */
  onClose(listener: () => void): void;
}

/** A method answering one request with a stream of responses. */
export interface ServerStreamingMethod<Req, Res> {
  readonly kind: 'server-streaming';
  readonly decode: (bytes: Buffer) => Req;
  readonly encode: (response: Res) => Uint8Array;
  readonly handle: (request: Req, stream: ResponseStream<Res>) => void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- methods of any message types share one table
export type GrpcMethod = UnaryMethod<any, any> | ServerStreamingMethod<any, any>;

/**
 * What one connection, one stream and all of them may hold, and for how long (the config's
 * `limits.grpc`, where the defaults live). Durations in milliseconds.
 */
export interface TransportLimits {
  /** `SETTINGS_MAX_CONCURRENT_STREAMS`, advertised and enforced per connection. */
  readonly maxConcurrentStreams: number;
  /** Largest request message accepted, in bytes, after decompression. */
  readonly maxMessageBytes: number;
  /** Request bytes held across every stream while messages arrive (see {@link BufferBudget}). */
  readonly maxBufferedBytes: number;
  /** `SETTINGS_MAX_HEADER_LIST_SIZE`: largest uncompressed header block of a request. */
  readonly maxHeaderListBytes: number;
  /** Open connections at once; more are closed on accept. */
  readonly maxConnections: number;
  /** A new connection must complete one request header block within this long. */
  readonly headersTimeout: number;
  /** A request message must arrive whole within this long of its headers. */
  readonly requestTimeout: number;
  /** A connection without open streams this long gets GOAWAY and is closed. */
  readonly idleTimeout: number;
}

export interface GrpcTransportOptions {
  /** Methods by HTTP/2 path, e.g. `/envoy.service.auth.v3.Authorization/Check`. */
  readonly methods: ReadonlyMap<string, GrpcMethod>;
  readonly limits: TransportLimits;
  readonly logger: Logger;
  /** Serve over TLS with these options (certificate, key, client CA); default plain text. */
  readonly tls?: TlsOptions | undefined;
}

/** One connection's open streams, for the idle and header timeouts. */
interface Connection {
  readonly session: http2.ServerHttp2Session;
  streams: number;
  /** GOAWAY sent for idleness; destroyed if still open at the next sweep. */
  closing: boolean;
  /** Streams the client may still reset before the connection is closed (a token bucket). */
  resetTokens: number;
  resetCheckedAt: number;
}

/**
 * Rapid reset (CVE-2023-44487): nghttp2 answers a burst of 1,000 client resets (then 33 a second)
 * with GOAWAY but leaves the socket open, and node does not close it. We close the connection a
 * little before that point so nothing lingers.
 */
const resetBurst = 500;
/** Quiet time before the first TCP keepalive probe. */
const tcpKeepaliveMs = 60_000;
const resetsPerSecond = 33;

const acceptEncoding = 'identity,deflate,gzip';
const contentType = 'application/grpc+proto';

// Header and trailer blocks are the same for every call; node copies them when sending.
// `grpc-accept-encoding` is optional; it goes only with a refused encoding.
const responseHeaders: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': contentType };
const okTrailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers(okTrailers);
}

/**
 * `grpc-message` is percent-encoded as gRPC over HTTP/2 says (every UTF-8 byte outside
 * printable ASCII, and `%`), so no CR/LF can reach the header.
 */
function encodeGrpcMessage(details: string): string {
  const text = details.length > 512 ? details.slice(0, 512) : details;
  return text.replace(/[^\x20-\x24\x26-\x7e]+/gu, (run) =>
    Buffer.from(run, 'utf8').toString('hex').toUpperCase().replace(/../g, '%$&'),
  );
}

/** One message, length-prefixed as gRPC frames it (uncompressed). */
export function frameMessage(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** Ends a call that has not sent headers yet with `code` (a trailers-only response). */
function endWithStatus(stream: http2.ServerHttp2Stream, code: number, details: string): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  stream.resume(); // whatever of the request is still arriving is read and dropped
  stream.respond(
    {
      ':status': 200,
      'content-type': contentType,
      'grpc-accept-encoding': acceptEncoding,
      'grpc-status': String(code),
      'grpc-message': encodeGrpcMessage(details),
    },
    { endStream: true },
  );
}

/**
 * The message of one whole length-prefixed frame (its length already checked against the cap by
 * {@link RequestMessage}), decompressed if flagged. Inflation stops at `maxBytes` of output, so a
 * compression bomb costs at most that much (RFC 1952 members are inflated in order, and zlib
 * gives up as soon as the output would pass the limit).
 */
function singleMessage(
  body: Buffer,
  encoding: string | undefined,
  maxBytes: number,
): Buffer | MessageProblem {
  const message = body.subarray(5);
  const flag = body[0];
  if (flag === 0) return message;
  if (flag !== 1) return { code: GrpcStatus.INTERNAL, details: 'bad message flags' };
  try {
    if (encoding === 'gzip') return gunzipSync(message, { maxOutputLength: maxBytes });
    if (encoding === 'deflate') return inflateSync(message, { maxOutputLength: maxBytes });
  } catch (error) {
    return (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE'
      ? { code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'request message too large' }
      : { code: GrpcStatus.INTERNAL, details: `request message is not valid ${encoding}` };
  }
  return { code: GrpcStatus.INTERNAL, details: 'compressed message without grpc-encoding' };
}

export class GrpcTransport {
  readonly #methods: ReadonlyMap<string, GrpcMethod>;
  readonly #maxMessageBytes: number;
  readonly #logger: Logger;
  readonly #server: http2.Http2Server | http2.Http2SecureServer;
  readonly #connections = new Map<http2.ServerHttp2Session, Connection>();
  readonly #openStreams = new Set<ResponseStream<unknown>>();
  readonly #budget: BufferBudget;
  /** Connections that have not yet sent one whole request header block. */
  readonly #unheard: ExpirySweeper<Connection>;
  /** Connections with no open stream. */
  readonly #idle: ExpirySweeper<Connection>;
  /** Streams whose request message has not arrived whole yet. */
  readonly #arriving: ExpirySweeper<http2.ServerHttp2Stream>;
  /** One listener for every stream's errors (a reset by the client, mostly). */
  readonly #onStreamError = (error: Error): void =>
    this.#logger.debug({ err: error }, 'gRPC stream error');

  constructor(options: GrpcTransportOptions) {
    const limits = options.limits;
    this.#methods = options.methods;
    this.#maxMessageBytes = limits.maxMessageBytes;
    this.#logger = options.logger;
    this.#budget = new BufferBudget(limits.maxBufferedBytes);
    this.#unheard = new ExpirySweeper(limits.headersTimeout, (connection) => {
      this.#logger.debug({}, 'gRPC connection sent no request headers in time');
      connection.session.destroy();
    });
    this.#idle = new ExpirySweeper(limits.idleTimeout, (connection) => this.#closeIdle(connection));
    this.#arriving = new ExpirySweeper(limits.requestTimeout, (stream) => {
      this.#refuse(stream, {
        code: GrpcStatus.DEADLINE_EXCEEDED,
        details: 'request message not received in time',
      });
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
    const serverOptions: http2.ServerOptions = {
      // nghttp2's own buffers per connection, in MB (request bytes are counted by the budget);
      // Envoy multiplexes many Checks on one connection.
      maxSessionMemory: 64,
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderListBytes,
      },
    };
    // With TLS, ALPN offers h2 only: gRPC has no HTTP/1.1 to fall back to.
    this.#server =
      options.tls === undefined
        ? http2.createServer(serverOptions)
        : http2.createSecureServer({ ...serverOptions, ...options.tls, allowHTTP1: false });
    // Over the cap, net.Server closes new sockets before HTTP/2 sees them.
    this.#server.maxConnections = limits.maxConnections;
    // Answers go out as soon as they are written, not held back for the peer's ACK (Nagle).
    // TCP keepalive finds peers that vanished while holding a stream open (a health Watch),
    // which no idle timeout sees because the connection is not idle.
    this.#server.on('connection', (socket: Socket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, tcpKeepaliveMs);
    });
    this.#server.on('session', (session) => this.#onSession(session));
    this.#server.on('stream', (stream, headers) => this.#onStream(stream, headers));
  }

  /** The underlying HTTP/2 server, to listen on. */
  get server(): http2.Http2Server | http2.Http2SecureServer {
    return this.#server;
  }

  /** Swaps the certificate, key and client CA of a TLS listener; new handshakes use them. */
  setSecureContext(context: TlsOptions): void {
    if ('setSecureContext' in this.#server) this.#server.setSecureContext(context);
  }

  /**
   * Stops accepting connections and tells every client to go away (GOAWAY), ends open
   * streaming calls, lets unary calls in flight finish, and closes whatever is left after
   * `timeoutMs`.
   */
  shutdown(timeoutMs: number): Promise<void> {
    for (const stream of this.#openStreams) stream.end();
    this.#unheard.clear();
    this.#idle.clear();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const session of this.#connections.keys()) session.destroy();
      }, timeoutMs);
      timer.unref();
      this.#server.close(() => {
        clearTimeout(timer);
        this.#arriving.clear();
        resolve();
      });
      for (const session of this.#connections.keys()) session.close();
    });
  }

  #onSession(session: http2.ServerHttp2Session): void {
    const connection: Connection = {
      session,
      streams: 0,
      closing: false,
      resetTokens: resetBurst,
      resetCheckedAt: Date.now(),
    };
    this.#connections.set(session, connection);
    this.#unheard.add(connection);
    session.on('close', () => {
      this.#connections.delete(session);
      this.#unheard.delete(connection);
      this.#idle.delete(connection);
    });
    session.on('error', (error: Error) =>
      this.#logger.debug({ err: error }, 'gRPC connection error'),
    );
  }

  #noteReset(connection: Connection): void {
    const now = Date.now();
    connection.resetTokens = Math.min(
      resetBurst,
      connection.resetTokens + ((now - connection.resetCheckedAt) * resetsPerSecond) / 1000,
    );
    connection.resetCheckedAt = now;
    if (--connection.resetTokens >= 0 || connection.session.destroyed) return;
    this.#logger.warn({}, 'gRPC connection closed: too many streams reset');
    connection.session.destroy(
      new Error('too many streams reset'),
      http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
    );
  }

  /** GOAWAY first (RFC 9113 §6.8: the client retries nothing lost); still open a sweep later, closed. */
  #closeIdle(connection: Connection): void {
    if (connection.closing) {
      connection.session.destroy();
      return;
    }
    connection.closing = true;
    connection.session.close();
    this.#idle.add(connection);
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', this.#onStreamError);
    const connection = this.#connections.get(stream.session as http2.ServerHttp2Session);
    if (connection !== undefined && connection.streams++ === 0) {
      this.#unheard.delete(connection);
      this.#idle.delete(connection);
    }
    let refused = false;
    const refuse = (problem: MessageProblem): void => {
      refused = true;
      this.#arriving.delete(stream);
      this.#refuse(stream, problem);
      // The answer is complete: the client may stop sending the rest (RFC 9113 §8.1).
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
    };
    const message = new RequestMessage(this.#budget, this.#maxMessageBytes, refuse);
    const call: { deadline: number | undefined; gone: boolean } = {
      deadline: undefined,
      gone: false,
    };
    stream.once('close', () => {
      call.gone = true;
      this.#arriving.delete(stream);
      message.abandon();
      if (connection === undefined) return;
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) this.#noteReset(connection);
      if (--connection.streams === 0 && !connection.session.closed) this.#idle.add(connection);
    });
    if (headers[':method'] !== 'POST') {
      stream.resume();
      stream.respond({ ':status': 405, allow: 'POST' }, { endStream: true });
      return;
    }
    if (!headers['content-type']?.startsWith('application/grpc')) {
      stream.resume();
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const method = this.#methods.get(headers[':path'] ?? '');
    if (method === undefined) {
      endWithStatus(stream, GrpcStatus.UNIMPLEMENTED, 'unknown method');
      return;
    }
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined) {
      const ms = typeof timeout === 'string' ? grpcTimeoutMs(timeout) : undefined;
      if (ms === undefined) {
        // As gRPC's own servers answer it (PROTOCOL-HTTP2: at most 8 digits and a unit).
        stream.resume();
        this.#refuse(stream, { code: GrpcStatus.INTERNAL, details: 'invalid grpc-timeout' });
        return;
      }
      call.deadline = performance.now() + ms;
    }
    const encoding = headers['grpc-encoding'];
    if (
      encoding !== undefined &&
      encoding !== 'identity' &&
      encoding !== 'gzip' &&
      encoding !== 'deflate'
    ) {
      endWithStatus(stream, GrpcStatus.UNIMPLEMENTED, 'unsupported grpc-encoding');
      return;
    }

    this.#arriving.add(stream);
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      const problem = message.add(chunk);
      if (problem !== undefined) refuse(problem);
    });
    stream.on('end', () => {
      if (refused) return;
      this.#arriving.delete(stream);
      const frame = message.finish();
      if (!Buffer.isBuffer(frame)) {
        this.#refuse(stream, frame);
        return;
      }
      const bytes = singleMessage(frame, encoding, this.#maxMessageBytes);
      if (!Buffer.isBuffer(bytes)) {
        this.#refuse(stream, bytes);
        return;
      }
      let request: unknown;
      try {
        request = method.decode(bytes);
      } catch {
        this.#refuse(stream, {
          code: GrpcStatus.INTERNAL,
          details: 'request message could not be decoded',
        });
        return;
      }
      if (method.kind === 'unary') this.#answerUnary(stream, method, request, call);
      else this.#openStream(stream, method, request);
    });
  }

  /**
   * Ends a call whose request message was not taken, with one log line: the request id lives in
   * the message, so the line carries the reason and Envoy's HTTP/2 stream instead.
   */
  #refuse(stream: http2.ServerHttp2Stream, problem: MessageProblem): void {
    this.#logger.info(
      { grpcStatus: problem.code, reason: problem.details, stream: stream.id },
      'gRPC request refused',
    );
    endWithStatus(stream, problem.code, problem.details);
  }

  #answerUnary(
    stream: http2.ServerHttp2Stream,
    method: UnaryMethod<unknown, unknown>,
    request: unknown,
    call: UnaryCall,
  ): void {
    let result: unknown;
    try {
      result = method.handle(request, call);
    } catch (error) {
      this.#fail(stream, method, error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (response) => this.#respond(stream, method, response),
        (error: unknown) => this.#fail(stream, method, error),
      );
    } else {
      this.#respond(stream, method, result);
    }
  }

  #respond(
    stream: http2.ServerHttp2Stream,
    method: UnaryMethod<unknown, unknown>,
    response: unknown,
  ): void {
    if (stream.destroyed || stream.closed) return; // the client gave up (deadline, cancel)
    let frame: Buffer;
    try {
      frame = frameMessage(method.encode(response));
    } catch (error) {
      this.#fail(stream, method, error);
      return;
    }
    stream.respond(responseHeaders, { waitForTrailers: true });
    stream.once('wantTrailers', sendOkTrailers);
    stream.end(frame);
  }

  #fail(
    stream: http2.ServerHttp2Stream,
    method: UnaryMethod<unknown, unknown>,
    error: unknown,
  ): void {
    const status = error instanceof GrpcError ? error : method.unexpected;
    if (status !== undefined) {
      endWithStatus(stream, status.code, status.details);
      return;
    }
    this.#logger.error({ err: error }, 'gRPC handler failed');
    endWithStatus(stream, GrpcStatus.UNKNOWN, 'internal error');
  }

  #openStream(
    stream: http2.ServerHttp2Stream,
    method: ServerStreamingMethod<unknown, unknown>,
    request: unknown,
  ): void {
    if (stream.destroyed || stream.closed) return;
    stream.respond(responseHeaders, { waitForTrailers: true });
    stream.once('wantTrailers', sendOkTrailers);
    const listeners: (() => void)[] = [];
    let closed = false;
    const responses: ResponseStream<unknown> = {
      write: (response) => {
        if (!closed && !stream.destroyed) stream.write(frameMessage(method.encode(response)));
      },
      end: () => {
        if (!closed && !stream.destroyed) stream.end();
      },
      onClose: (listener) => {
        if (closed) listener();
        else listeners.push(listener);
      },
    };
    this.#openStreams.add(responses);
    stream.on('close', () => {
      closed = true;
      this.#openStreams.delete(responses);
      for (const listener of listeners) listener();
    });
    try {
      method.handle(request, responses);
    } catch (error) {
      this.#logger.error({ err: error }, 'gRPC streaming handler failed');
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }
}
