/** Runs the real CLI as a child process, on free ports, for tests of signals, reload and memory. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { findProtoDir, loadProtos } from '../../src/server/protos.ts';

/** `dist/src/cli.js`, next to this compiled file's `dist/test/support/`. */
const distRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = join(distRoot, 'src', 'cli.js');
/** What `npm run demo` runs after building. */
export const demoCliPath = join(distRoot, 'dev', 'demo-cli.js');
/** The preload that shifts a process's clock (see `dev/clock-offset.ts`). */
export const clockOffsetPreloadPath = join(distRoot, 'dev', 'clock-offset.js');

import { freePort } from './redis-servers.ts';

export { freePort };

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly configPath: string;
  readonly ports: { readonly grpc: number; readonly http: number; readonly admin: number };
  readonly grpcTarget: string;
  readonly adminBase: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Rewrites the config file (call `signal('SIGHUP')` to reload it). */
  writeConfig(document: Record<string, unknown>): void;
  /** Resident set size in bytes, from /proc. */
  rss(): number;
  /** Sends a signal and resolves with the exit code once the process ends. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A config file on free loopback ports; `write` puts a document in it, listen addresses added. */
export interface ServerConfigFile {
  readonly ports: { readonly grpc: number; readonly http: number; readonly admin: number };
  readonly configPath: string;
  readonly write: (document: Record<string, unknown>) => void;
}

export async function serverConfigFile(
  document: Record<string, unknown>,
): Promise<ServerConfigFile> {
  const ports = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
  const configPath = join(mkdtempSync(join(tmpdir(), 'eoa-')), 'config.json');
  const write = (doc: Record<string, unknown>): void =>
    writeFileSync(
      configPath,
      JSON.stringify({
        ...doc,
        // Free ports, and whatever else the document says of the listeners (TLS).
        listen: {
          grpc: `127.0.0.1:${ports.grpc}`,
          http: `127.0.0.1:${ports.http}`,
          admin: `127.0.0.1:${ports.admin}`,
          ...(doc['listen'] as object | undefined),
        },
        // Processes stop at once unless the test is about the drain delay.
        shutdown: { drainDelay: '0s', ...(doc['shutdown'] as object | undefined) },
        // The provider runs in the test's process, on a machine that may be busy: Checks get
        // 2s unless the test is about the budget (the product's default is 100ms).
        request: { budget: '2s', ...(doc['request'] as object | undefined) },
      }),
    );
  write(document);
  return { ports, configPath, write };
}

/** How the process is started, besides its config. */
export interface SpawnOptions {
  /** Node options before the script, e.g. `['--import', preload]`. */
  readonly nodeArgs?: readonly string[];
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

export async function spawnServer(
  document: Record<string, unknown>,
  options: SpawnOptions = {},
): Promise<ServerProcess> {
  const { ports, configPath, write } = await serverConfigFile(document);
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), cliPath, 'serve', '--config', configPath],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const adminBase = `http://127.0.0.1:${ports.admin}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${output}`);
    try {
      if ((await fetch(`${adminBase}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      // Never leave a process behind: its pipes would keep the test process alive.
      child.kill('SIGKILL');
      await exited;
      throw new Error(`server not ready in 10 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    configPath,
    ports,
    grpcTarget: `127.0.0.1:${ports.grpc}`,
    adminBase,
    output: () => output,
    writeConfig: write,
    rss(): number {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      if (kb === undefined) throw new Error('no VmRSS in /proc status');
      return Number(kb) * 1024;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A `grpc.health.v1.Health` client on our own proto (the standard one). */
export function healthClient(target: string): {
  check(service: string): Promise<{ status?: number; error?: grpc.ServiceError }>;
  close(): void;
} {
  const definition = protoLoader.loadSync('grpc/health/v1/health.proto', {
    includeDirs: [findProtoDir()],
    enums: Number,
  });
  type HealthClient = grpc.Client & {
    Check(
      request: { service: string },
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, response: { status: number }) => void,
    ): void;
  };
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: {
      health: {
        v1: { Health: new (target: string, credentials: grpc.ChannelCredentials) => HealthClient };
      };
    };
  };
  const Health = loaded.grpc.health.v1.Health;
  const client = new Health(target, grpc.credentials.createInsecure());
  return {
    check: (service) =>
      new Promise((resolve) =>
        client.Check(
          { service },
          { deadline: Date.now() + 2000 },
          (error: grpc.ServiceError | null, res: { status: number }) =>
            resolve(error ? { error } : { status: res.status }),
        ),
      ),
    close: () => client.close(),
  };
}

/** A `grpc.health.v1.Health/Watch` stream: every status the server sent, and a way to await one. */
export interface HealthWatch {
  readonly statuses: readonly number[];
  /** Resolves once `status` is the latest status sent; rejects if the stream fails first. */
  until(status: number): Promise<void>;
  close(): void;
}

export function watchHealth(target: string, service: string): HealthWatch {
  const watch = loadProtos().health['Watch'];
  if (watch === undefined) throw new Error('health protos lack Watch');
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const statuses: number[] = [];
  const waiters: { status: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  let failure: Error | undefined;
  const call = client.makeServerStreamRequest(
    watch.path,
    watch.requestSerialize,
    watch.responseDeserialize as (bytes: Buffer) => { status: number },
    { service },
  );
  call.on('data', ({ status }: { status: number }) => {
    statuses.push(status);
    for (const waiter of waiters.filter((w) => w.status === status)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  call.on('error', (error: Error) => {
    failure = error;
    for (const waiter of waiters.splice(0)) waiter.reject(error);
  });
  return {
    statuses,
    until: (status) =>
      statuses.at(-1) === status
        ? Promise.resolve()
        : failure !== undefined
          ? Promise.reject(failure)
          : new Promise((resolve, reject) => waiters.push({ status, resolve, reject })),
    close(): void {
      call.cancel();
      client.close();
    },
  };
}
