/** Cold start: time from spawning the CLI to gRPC health SERVING, with the provider already up. */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { cliPath, healthClient, serverConfigFile } from '../test/support/server-process.ts';

const servingStatus = 1;

/** Whether something accepts TCP connections on the port yet. */
function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Spawns the server with `document`, waits for the gRPC port to accept connections, then polls
 * `grpc.health.v1.Health/Check` every 5 ms; resolves with the milliseconds from spawn until it
 * answered SERVING. (A gRPC channel that failed to connect backs off for a second, so it is
 * only opened once the port listens.)
 */
export async function measureColdStart(document: Record<string, unknown>): Promise<number> {
  const { ports, configPath } = await serverConfigFile(document);
  const started = performance.now();
  const child = spawn(process.execPath, [cliPath, 'serve', '--config', configPath], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let health: ReturnType<typeof healthClient> | undefined;
  try {
    while (!(await accepting(ports.grpc))) {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
      if (performance.now() - started > 10_000) throw new Error('not listening within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    health = healthClient(`127.0.0.1:${ports.grpc}`);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
      const answer = await health.check('');
      if (answer.status === servingStatus) return performance.now() - started;
      if (performance.now() - started > 10_000) throw new Error('not SERVING within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    health?.close();
    child.kill('SIGTERM');
    await exited;
  }
}
