/** The baselines: Check servers that decode each request and allow it, doing nothing else. */
import * as grpc from '@grpc/grpc-js';
import { grpcLimitsSchema } from '../src/config/schema.ts';
import { GrpcTransport, type GrpcMethod } from '../src/server/grpc-transport.ts';
import { createLogger } from '../src/observability/logger.ts';
import { loadProtos, type CheckRequest } from '../src/server/protos.ts';
import type { CheckResponse } from '../test/support/check-response.ts';

// Run as a child process: `node do-nothing-server.js <port> [grpc-js|transport]`; prints
// `listening <port>`.
//
// - `grpc-js` (the default) is SPEC §13's floor: a do-nothing grpc-js server with the same
//   protos, decode options and message limit as the real server.
// - `transport` does nothing on the server's own gRPC transport, so the difference between it
//   and the server is the decision alone.
const kind = process.argv[3] ?? 'grpc-js';
const allowed: CheckResponse = Object.freeze({ status: { code: 0 } });
const protos = loadProtos();
const host = '127.0.0.1';
const requestedPort = Number(process.argv[2] ?? '0');
/** The server's default transport limits, so the floor is measured under the same bounds. */
const limits = grpcLimitsSchema.parse({});

function listenGrpcJs(): Promise<{ port: number; stop: () => void }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': limits.maxMessageBytes });
  server.addService(protos.authorization, {
    Check(
      _call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
      callback: grpc.sendUnaryData<CheckResponse>,
    ): void {
      callback(null, allowed);
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync(
      `${host}:${requestedPort}`,
      grpc.ServerCredentials.createInsecure(),
      (error, port) =>
        error ? reject(error) : resolve({ port, stop: () => server.forceShutdown() }),
    );
  });
}

function listenTransport(): Promise<{ port: number; stop: () => void }> {
  const check = protos.authorization['Check'];
  if (check === undefined) throw new Error('Check missing from the Authorization service');
  const method: GrpcMethod = {
    kind: 'unary',
    decode: check.requestDeserialize,
    encode: check.responseSerialize,
    handle: () => allowed,
  };
  const transport = new GrpcTransport({
    methods: new Map([[check.path, method]]),
    limits,
    logger: createLogger({ level: 'silent' }),
  });
  return new Promise((resolve) => {
    transport.server.listen(requestedPort, host, () => {
      const address = transport.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({ port, stop: () => void transport.shutdown(0) });
    });
  });
}

if (kind !== 'grpc-js' && kind !== 'transport') throw new Error(`unknown baseline ${kind}`);
const { port, stop } = await (kind === 'grpc-js' ? listenGrpcJs() : listenTransport());
process.stdout.write(`listening ${port}\n`);
process.on('SIGTERM', () => {
  stop();
  process.exit(0);
});
