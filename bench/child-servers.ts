/** Starts the server under test (the real CLI) and the do-nothing server as child processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer, type ServerProcess } from '../test/support/server-process.ts';

export type { ServerProcess };

/**
 * Spawns the CLI with `document` (listen addresses added) and waits until `/readyz` is 200;
 * with `profileDir`, Node writes a CPU profile of the server there when it stops.
 */
export function startServerProcess(
  document: Record<string, unknown>,
  profileDir?: string,
): Promise<ServerProcess> {
  return spawnServer(
    document,
    profileDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] },
  );
}

export interface DoNothingProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly grpcTarget: string;
  stop(): Promise<void>;
}

/**
 * Spawns `do-nothing-server.js` (next to this compiled file) on a free port: on grpc-js (SPEC
 * §13's floor) or on the server's own gRPC transport.
 */
export async function startDoNothingServer(
  kind: 'grpc-js' | 'transport' = 'grpc-js',
): Promise<DoNothingProcess> {
  const entry = join(dirname(fileURLToPath(import.meta.url)), 'do-nothing-server.js');
  const child = spawn(process.execPath, [entry, '0', kind], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    child.once('exit', (code) => reject(new Error(`do-nothing server exited with ${code}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /listening (\d+)/.exec(seen);
      if (match?.[1] !== undefined) resolve(Number(match[1]));
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    pid: child.pid ?? 0,
    grpcTarget: `127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
