/** Starts a real server on free loopback ports from a config written as a plain object. */
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import {
  startTestProvider,
  type TestClient,
  type TestProvider,
  type TestProviderOptions,
} from '../../dev/test-provider.ts';
import { startServer, type ServerHandle } from '../../src/main.ts';
import { ServingStatus } from '../../src/server/protos.ts';
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
        // Tests stop at once unless they test the drain delay.
        shutdown: { drainDelay: '0s', ...(document['shutdown'] as object | undefined) },
        // The provider runs in the test's own process, on a machine that may be busy: Checks
        // get 2s unless the test is about the budget (the product's default is 100ms).
        request: { budget: '2s', ...(document['request'] as object | undefined) },
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

export interface TestServerOptions {
  /** Default true. */
  readonly waitReady?: boolean;
  readonly now?: () => number;
  /** Default: a silent one. */
  readonly logger?: Logger;
}

/** Starts a server; by default waits until it is SERVING (every app's discovery answered). */
export async function startTestServer(
  document: Record<string, unknown>,
  options: TestServerOptions = {},
): Promise<TestServer> {
  const handle = await startServer(testConfig(document), {
    logger: options.logger ?? silentLogger(),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  if (options.waitReady ?? true) {
    const deadline = Date.now() + 10_000;
    while (handle.health.status() !== ServingStatus.SERVING) {
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

/**
 * An app that signs its users in at a test OpenID Provider: the app's name is also its client id
 * and names its host, `<name>.example.com`.
 */
export interface SignInApp {
  readonly name: string;
  readonly clientSecret: string;
  /** The client's registration besides its id, secret and `https://<host>/oauth2/callback`. */
  readonly client?: Omit<Partial<TestClient>, 'clientId' | 'clientSecret'>;
  /** The provider's options besides its one client. */
  readonly provider?: Omit<TestProviderOptions, 'clients'>;
  /** The app's `oidc` besides issuer, client id and secret. */
  readonly oidc?: Record<string, unknown>;
  /** The app's `session` besides the test secret. */
  readonly session?: Record<string, unknown>;
  /** The rest of the app (`passIdToken`, `upstreamHeaders`, …). */
  readonly app?: Record<string, unknown>;
}

/** A test OpenID Provider with the one client `app` signs in as. */
export function startAppProvider(app: SignInApp): Promise<TestProvider> {
  return startTestProvider({
    ...app.provider,
    clients: [
      {
        clientId: app.name,
        clientSecret: app.clientSecret,
        redirectUris: [`https://${app.name}.example.com/oauth2/callback`],
        ...app.client,
      },
    ],
  });
}

/** The config of `app`, signing in at `issuer` (see {@link startAppProvider}). */
export function signInAppConfig(app: SignInApp, issuer: string): Record<string, unknown> {
  return {
    name: app.name,
    match: { hosts: [`${app.name}.example.com`] },
    oidc: { issuer, clientId: app.name, clientSecret: app.clientSecret, ...app.oidc },
    session: { secrets: [testSessionSecret], ...app.session },
    ...app.app,
  };
}

export interface AppStack {
  readonly provider: TestProvider;
  /** Close it before the provider. */
  readonly server: TestServer;
}

/** A test OpenID Provider and a server with `app` alone, signing in there. */
export async function startAppStack(
  app: SignInApp,
  options: TestServerOptions = {},
): Promise<AppStack> {
  const provider = await startAppProvider(app);
  try {
    const server = await startTestServer(
      { apps: [signInAppConfig(app, provider.issuer)] },
      options,
    );
    return { provider, server };
  } catch (error) {
    await provider.close();
    throw error;
  }
}
