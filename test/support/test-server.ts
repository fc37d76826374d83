/** Starts a real server on free loopback ports from a config written as a plain object. */
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { startServer, type ServerHandle } from '../../src/main.ts';
import { silentLogger, type Logger } from '../../src/observability/logger.ts';

/** A session secret for tests only (>= 32 bytes). */
export const testSessionSecret = 'q7TnV2xLc9RkW4bZ0pHs6JfM8dYg3AeU1oNi5rXwKtB';

/** One app with loopback issuer and everything a config needs; override what a test cares about. */
export function testApp(
  name: string,
  overrides: Record<string, unknown> = {},
  issuer = 'http://127.0.0.1:1/issuer',
): Record<string, unknown> {
  return {
    name,
    oidc: {
      issuer,
      clientId: name,
      clientSecret: 'client-secret',
    },
    session: { secrets: [testSessionSecret] },
    ...overrides,
  };
}

/** Loads a config object through the real loader (so defaults and validation apply). */
export function testConfig(
  document: Record<string, unknown>,
  env: Record<string, string> = {},
): Config {
  const result = loadConfig(
    {
      text: JSON.stringify({
        listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0', admin: '127.0.0.1:0' },
        log: { level: 'silent' },
        ...document,
      }),
      format: 'json',
    },
    env,
  );
  if (!result.ok) {
    throw new Error(
      'test config invalid:\n' + result.problems.map((p) => `${p.path}: ${p.message}`).join('\n'),
    );
  }
  return result.config;
}

export interface TestServer {
  readonly handle: ServerHandle;
  readonly grpcTarget: string;
  readonly httpBase: string;
  readonly adminBase: string;
  close(): Promise<void>;
}

/** Starts a server; by default waits until it is SERVING (every app's discovery answered). */
export async function startTestServer(
  document: Record<string, unknown>,
  options: {
    readonly waitReady?: boolean;
    readonly now?: () => number;
    /** Default: a silent one. */
    readonly logger?: Logger;
  } = {},
): Promise<TestServer> {
  const handle = await startServer(testConfig(document), {
    logger: options.logger ?? silentLogger(),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  if (options.waitReady ?? true) {
    const deadline = Date.now() + 10_000;
    while (handle.health.status() !== 'SERVING') {
      if (Date.now() > deadline) {
        await handle.close();
        throw new Error(`server not ready: ${JSON.stringify(handle.health.waiting())}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return {
    handle,
    grpcTarget: `127.0.0.1:${handle.ports.grpc}`,
    httpBase: `http://127.0.0.1:${handle.ports.http}`,
    adminBase: `http://127.0.0.1:${handle.ports.admin}`,
    close: () => handle.close(),
  };
}
