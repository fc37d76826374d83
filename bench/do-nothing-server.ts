/** The baseline: a grpc-js Check server that decodes each request and allows it, doing nothing else. */
import * as grpc from '@grpc/grpc-js';
import { bindGrpc } from '../src/server/grpc-server.ts';
import { loadProtos, type CheckRequest, type CheckResponse } from '../src/server/protos.ts';

// Run as a child process: `node do-nothing-server.js <port>`; prints `listening <port>`.
// Same protos, decode options and server settings as the real server, so the difference
// between the two is our decision and nothing else.
const allowed: CheckResponse = Object.freeze({ status: { code: 0 } });
const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
server.addService(loadProtos().authorization, {
  Check(
    _call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
    callback: grpc.sendUnaryData<CheckResponse>,
  ): void {
    callback(null, allowed);
  },
});
const port = await bindGrpc(server, `127.0.0.1:${process.argv[2] ?? '0'}`);
process.stdout.write(`listening ${port}\n`);
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
