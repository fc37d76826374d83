/** Encodes a CheckRequest with Envoy's upstream protos into the gRPC message frame h2load sends. */
import { writeFileSync } from 'node:fs';
import type { UpstreamCheckRequest, UpstreamProtos } from '../test/support/upstream-protos.ts';

/**
 * The length-prefixed gRPC message (1 byte "not compressed", 4 bytes big-endian length, then
 * the protobuf bytes), exactly what Envoy's ext_authz filter puts in the DATA frame.
 */
export function grpcFrame(protos: UpstreamProtos, request: UpstreamCheckRequest): Buffer {
  const message = protos.encode(protos.CheckRequest, request as Record<string, unknown>);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(0, 0);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Writes the frame of `request` to `path` for `h2load -d`; returns its size in bytes. */
export function writeGrpcFrame(
  path: string,
  protos: UpstreamProtos,
  request: UpstreamCheckRequest,
): number {
  const frame = grpcFrame(protos, request);
  writeFileSync(path, frame);
  return frame.length;
}
