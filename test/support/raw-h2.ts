/**
 * A hand-driven HTTP/2 client (RFC 9113) for what no well-behaved client sends: more streams
 * than the server allows, HEADERS then RST_STREAM in a loop, header blocks never finished.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One frame: 9-byte header (RFC 9113 §4.1) and payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1). */
function hpackInteger(value: number, n: number, first: number): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7, 0)), bytes]);
}

/** A header block of literals without indexing and without Huffman (RFC 7541 §6.2.2). */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(
    headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]),
  );
}

/** The request headers of a gRPC call of `path`. */
export function grpcRequestHeaders(
  path: string,
  extra: ReadonlyArray<readonly [string, string]> = [],
): Buffer {
  return headerBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'authz'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ...extra,
  ]);
}

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A raw connection: writes frames as told, reads every frame the server sends. */
export class RawH2Connection {
  readonly socket: Socket;
  readonly frames: ReceivedFrame[] = [];
  readonly closed: Promise<void>;
  #pending: Buffer = Buffer.alloc(0);

  private constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {}); // a reset by the server is an outcome the test reads
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
  }

  /** Connects, sends the preface and an empty SETTINGS frame. */
  static async open(port: number): Promise<RawH2Connection> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.setNoDelay(true);
    const connection = new RawH2Connection(socket);
    socket.write(Buffer.concat([preface, frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0))]));
    return connection;
  }

  write(bytes: Buffer): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(bytes);
  }

  headers(
    streamId: number,
    block: Buffer,
    options: { endStream?: boolean; endHeaders?: boolean } = {},
  ): Buffer {
    const flags =
      (options.endStream === true ? END_STREAM : 0) |
      (options.endHeaders === false ? 0 : END_HEADERS);
    return frame(FrameType.HEADERS, flags, streamId, block);
  }

  /** The frames of type `type` received so far. */
  received(type: number): ReceivedFrame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** The error code of the GOAWAY received, if any. */
  goawayCode(): number | undefined {
    const goaway = this.received(FrameType.GOAWAY)[0];
    return goaway === undefined ? undefined : goaway.payload.readUInt32BE(4);
  }

  /** Resolves once a frame matching `test` has arrived (or the socket closed: undefined). */
  async waitFor(test: (f: ReceivedFrame) => boolean): Promise<ReceivedFrame | undefined> {
    for (;;) {
      const found = this.frames.find(test);
      if (found !== undefined) return found;
      if (this.socket.destroyed) return undefined;
      await Promise.race([
        new Promise((resolve) => this.socket.once('data', resolve)),
        this.closed,
      ]);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  #read(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 9) {
      const length = this.#pending.readUIntBE(0, 3);
      if (this.#pending.length < 9 + length) break;
      const received: ReceivedFrame = {
        type: this.#pending[3] ?? 0,
        flags: this.#pending[4] ?? 0,
        streamId: this.#pending.readUInt32BE(5) & 0x7fffffff,
        payload: this.#pending.subarray(9, 9 + length),
      };
      this.#pending = this.#pending.subarray(9 + length);
      this.frames.push(received);
      if (received.type === FrameType.SETTINGS && (received.flags & ACK) === 0)
        this.write(frame(FrameType.SETTINGS, ACK, 0, Buffer.alloc(0)));
    }
  }
}

/** RST_STREAM with `code` (RFC 9113 §6.4). */
export function rstStream(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

/** DATA on `streamId`. */
export function dataFrame(streamId: number, payload: Buffer, endStream = false): Buffer {
  return frame(FrameType.DATA, endStream ? END_STREAM : 0, streamId, payload);
}
