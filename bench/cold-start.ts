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

/** Where a cold start's time went, from the server's `started` log line (ms since spawn). */
export interface StartupPhases {
  /** Node's own start and the module graph loaded (the CLI's first line of code). */
  readonly modules: number;
  /** The configuration read and validated. */
  readonly config: number;
  /** Keys derived, apps built, listeners bound: `startServer` returned. */
  readonly listening: number;
  /** SERVING answered: discovery at the provider done (and the health poll's 5 ms). */
  readonly serving: number;
}

/** The `startupMs` of the server's `started` log line, if it printed one. */
export function startupPhasesOf(stdout: string): Omit<StartupPhases, 'serving'> | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.includes('"startupMs"')) continue;
    try {
      const parsed = JSON.parse(line) as { startupMs?: Record<string, unknown> };
      const { modules, config, listening } = parsed.startupMs ?? {};
      if (
        typeof modules === 'number' &&
        typeof config === 'number' &&
        typeof listening === 'number'
      )
        return { modules, config, listening };
    } catch {
      // Not a log line of ours: keep looking.
    }
  }
  return undefined;
}

/**
 * Spawns the server with `document`, waits for the gRPC port to accept connections, then polls
 * `grpc.health.v1.Health/Check` every 5 ms; resolves with the milliseconds from spawn until it
 * answered SERVING. (A gRPC channel that failed to connect backs off for a second, so it is
 * only opened once the port listens.)
 */
export async function measureColdStart(document: Record<string, unknown>): Promise<number> {
  return (await measureColdStartPhases(document)).serving;
}

/**
 * {@link measureColdStart}, with the phases the server logged; the process start is taken as
 * the spawn (Node's `performance.timeOrigin` is a few ms after it).
 */
export async function measureColdStartPhases(
  document: Record<string, unknown>,
): Promise<Partial<StartupPhases> & { readonly serving: number }> {
  const { ports, configPath } = await serverConfigFile(document);
  const started = performance.now();
  const child = spawn(process.execPath, [cliPath, 'serve', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
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
      if (answer.status === servingStatus) {
        const serving = performance.now() - started;
        // The `started` line is written before SERVING can be answered.
        return { ...startupPhasesOf(stdout), serving };
      }
      if (performance.now() - started > 10_000) throw new Error('not SERVING within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    health?.close();
    child.kill('SIGTERM');
    await exited;
  }
}
