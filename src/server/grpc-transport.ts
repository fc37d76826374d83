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
import { gunzipSync, inflateSync } from 'node:zlib';
import type { Logger } from '../observability/logger.ts';

/** The gRPC status codes this server sends. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
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

/** A method answering one request with one response. */
export interface UnaryMethod<Req, Res> {
  readonly kind: 'unary';
  readonly decode: (bytes: Buffer) => Req;
  readonly encode: (response: Res) => Uint8Array;
  /** The response, synchronously when it needs no I/O. */
  readonly handle: (request: Req) => Res | Promise<Res>;
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

export interface GrpcTransportOptions {
  /** Methods by HTTP/2 path, e.g. `/envoy.service.auth.v3.Authorization/Check`. */
  readonly methods: ReadonlyMap<string, GrpcMethod>;
  /** Largest request message accepted, in bytes, after decompression. */
  readonly maxMessageBytes: number;
  readonly logger: Logger;
}

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

/** Why a request body is not one acceptable message; `undefined` when it is. */
type BodyProblem = { readonly code: GrpcStatusCode; readonly details: string };

/** Reads the single length-prefixed message out of a request body, decompressing it if flagged. */
function singleMessage(
  body: Buffer,
  encoding: string | undefined,
  maxBytes: number,
): Buffer | BodyProblem {
  if (body.length < 5) {
    return { code: GrpcStatus.INTERNAL, details: 'request body is not a gRPC message' };
  }
  const length = body.readUInt32BE(1);
  if (length > maxBytes) {
    return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'request message too large' };
  }
  if (body.length < 5 + length) {
    return { code: GrpcStatus.INTERNAL, details: 'request message truncated' };
  }
  if (body.length > 5 + length) {
    return { code: GrpcStatus.UNIMPLEMENTED, details: 'more than one request message' };
  }
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
  readonly #server: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #openStreams = new Set<ResponseStream<unknown>>();
  /** One listener for every stream's errors (a reset by the client, mostly). */
  readonly #onStreamError = (error: Error): void =>
    this.#logger.debug({ err: error }, 'gRPC stream error');

  constructor(options: GrpcTransportOptions) {
    this.#methods = options.methods;
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#logger = options.logger;
    this.#server = http2.createServer({
      // Buffered request bytes per connection, in MB; Envoy multiplexes many Checks on one.
      maxSessionMemory: 64,
    });
    // Answers go out as soon as they are written, not held back for the peer's ACK (Nagle).
    this.#server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
      session.on('error', (error: Error) =>
        this.#logger.debug({ err: error }, 'gRPC connection error'),
      );
    });
    this.#server.on('stream', (stream, headers) => this.#onStream(stream, headers));
  }

  /** The underlying HTTP/2 server, to listen on. */
  get server(): http2.Http2Server {
    return this.#server;
  }

  /**
   * Stops accepting connections and tells every client to go away (GOAWAY), ends open
   * streaming calls, lets unary calls in flight finish, and closes whatever is left after
   * `timeoutMs`.
   */
  shutdown(timeoutMs: number): Promise<void> {
    for (const stream of this.#openStreams) stream.end();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const session of this.#sessions) session.destroy();
      }, timeoutMs);
      timer.unref();
      this.#server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const session of this.#sessions) session.close();
    });
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', this.#onStreamError);
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

    const maxBytes = this.#maxMessageBytes;
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let received = 0;
    let refused = false;
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      received += chunk.length;
      if (received > maxBytes + 5) {
        refused = true;
        endWithStatus(stream, GrpcStatus.RESOURCE_EXHAUSTED, 'request message too large');
        // The answer is complete: the client may stop sending the rest (RFC 9113 §8.1).
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return;
      }
      if (first === undefined) first = chunk;
      else (chunks ??= [first]).push(chunk);
    });
    stream.on('end', () => {
      if (refused) return;
      const body =
        chunks !== undefined ? Buffer.concat(chunks, received) : (first ?? Buffer.alloc(0));
      const message = singleMessage(body, encoding, maxBytes);
      if (!Buffer.isBuffer(message)) {
        endWithStatus(stream, message.code, message.details);
        return;
      }
      let request: unknown;
      try {
        request = method.decode(message);
      } catch {
        endWithStatus(stream, GrpcStatus.INTERNAL, 'request message could not be decoded');
        return;
      }
      if (method.kind === 'unary') this.#answerUnary(stream, method, request);
      else this.#openStream(stream, method, request);
    });
  }

  #answerUnary(
    stream: http2.ServerHttp2Stream,
    method: UnaryMethod<unknown, unknown>,
    request: unknown,
  ): void {
    let result: unknown;
    try {
      result = method.handle(request);
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
