/** `envoy-oidc-authz demo`: a local OpenID Provider, the server and an Envoy-like gateway, wired together. */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config/load.ts';
import { isLoopbackHost } from '../src/loopback-host.ts';
import { EnvoyClient } from './envoy-client.ts';
import { startDevGateway, type DevGateway, type DevRoute } from './dev-gateway.ts';
import { createIdentityUpstream } from './identity-page.ts';
import { DEMO_USER, startTestProvider, type TestProvider } from './test-provider.ts';
import { loadUpstreamProtos } from './upstream-protos.ts';
import { startServer, type ServerHandle } from '../src/main.ts';
import { ServingStatus } from '../src/server/protos.ts';
import { createLogger, type Logger } from '../src/observability/logger.ts';
import { DEMO_APP, SIGNED_OUT_PATH, demoConfigDocument } from './demo-config.ts';
import { checkLine, loginLine } from './demo-activity.ts';

export interface DemoOptions {
  /** Loopback address everything listens on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Gateway port; 0 picks a free one. Default 8080. */
  readonly port?: number;
  /** OpenID Provider port; 0 picks a free one. Default 8081. */
  readonly providerPort?: number;
  /** The server's log level. Default `warn`. */
  readonly logLevel?: string;
  /** Replaces the server's logger (tests pass a silent one). */
  readonly logger?: Logger;
  /** Longest wait for the server to be SERVING, in ms. Default 10000. */
  readonly readyTimeoutMs?: number;
  /** Told about failed checks at the gateway. Default: written to stderr. */
  readonly onGatewayError?: (message: string) => void;
  /**
   * Told what the demo does, one line each: every name signed in at the provider, every request
   * the gateway let through or turned away (see `demo-activity.ts`). Default: ignored.
   */
  readonly onActivity?: (line: string) => void;
}

/** A running demo. */
export interface Demo {
  /** Open this: `http://127.0.0.1:8080/`. */
  readonly url: string;
  readonly issuer: string;
  /** The server's admin listener (`/healthz`, `/readyz`, `/metrics`). */
  readonly adminUrl: string;
  /** The demo user's login; the provider accepts any password, and any other name too. */
  readonly login: string;
  readonly server: ServerHandle;
  readonly provider: TestProvider;
  /** Stops the gateway, the server and the provider, in that order. */
  close(): Promise<void>;
}

function bracketed(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Turns a listen failure on a taken port into a message that says which option moves it. */
function explainPortInUse(what: string, port: number, option: string) {
  return (error: unknown): never => {
    if ((error as { code?: unknown }).code === 'EADDRINUSE') {
      throw new Error(
        `the ${what}'s port ${port} is in use (EADDRINUSE): choose another with ${option}`,
      );
    }
    throw error;
  };
}

async function waitServing(server: ServerHandle, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (server.health.status() !== ServingStatus.SERVING) {
    if (Date.now() > deadline) {
      throw new Error(
        `the server did not become ready: ${JSON.stringify(server.health.waiting())}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts the demo: the gateway listens first (so its URL, the redirect URI, is known even on
 * port 0), then the provider with the demo client registered, then the server with a generated
 * in-memory config; the gateway's checks wait for the server. On any failure whatever started
 * is stopped again.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) {
    throw new Error(
      `--host must be a loopback address (127.0.0.1, ::1, localhost): the demo runs over plain http`,
    );
  }
  const clientSecret = randomBytes(32).toString('base64url');
  const stack: Array<() => Promise<void> | void> = [];
  const closeAll = async (): Promise<void> => {
    for (const stop of stack.reverse()) await stop();
    stack.length = 0;
  };

  const report = options.onActivity ?? (() => undefined);
  // Known once the provider listens; the gateway's first check waits for the server after it.
  let issuer = '';
  const identityHeader = 'x-auth-request-user';

  let ready!: (route: DevRoute) => void;
  let failed!: (error: Error) => void;
  const route = new Promise<DevRoute>((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });

  try {
    const gatewayPort = options.port ?? 8080;
    const gateway: DevGateway = await startDevGateway({
      host,
      port: gatewayPort,
      route,
      onCheck: (request, outcome) =>
        report(checkLine(request, outcome, { issuer, identityHeader })),
      onError:
        options.onGatewayError ?? ((message) => process.stderr.write(`gateway: ${message}\n`)),
    }).catch(explainPortInUse('gateway', gatewayPort, '--port'));
    stack.push(() => gateway.close());

    const providerPort = options.providerPort ?? 8081;
    const provider = await startTestProvider({
      host,
      port: providerPort,
      users: [DEMO_USER],
      anyLogin: true,
      startAgainUrl: `${gateway.url}/`,
      onLogin: (login) => report(loginLine(login)),
      clients: [
        {
          clientId: DEMO_APP,
          clientSecret,
          redirectUris: [`${gateway.url}/oauth2/callback`],
          postLogoutRedirectUris: [`${gateway.url}${SIGNED_OUT_PATH}`],
        },
      ],
    }).catch(explainPortInUse('OpenID Provider', providerPort, '--provider-port'));
    stack.push(() => provider.close());
    issuer = provider.issuer;

    const loaded = loadConfig(
      {
        document: demoConfigDocument({
          host,
          issuer: provider.issuer,
          clientSecret,
          gatewayUrl: gateway.url,
          ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
        }),
      },
      {},
    );
    if (!loaded.ok) {
      throw new Error(
        'demo configuration rejected: ' +
          loaded.problems.map((p) => `${p.path}: ${p.message}`).join('; '),
      );
    }
    const server = await startServer(loaded.config, {
      logger: options.logger ?? createLogger({ level: loaded.config.log.level }),
    });
    stack.push(() => server.close());
    await waitServing(server, options.readyTimeoutMs ?? 10_000);

    const client = new EnvoyClient({
      target: `${bracketed(host)}:${server.ports.grpc}`,
      protos: loadUpstreamProtos(),
      // ENVOY.md §1: a code exchange runs inside the check, so the filter gets 5 s, as in our
      // Envoy examples, rather than Envoy's 200 ms default.
      timeoutMs: 5_000,
    });
    stack.push(() => client.close());
    const app = loaded.config.apps[0];
    ready({
      envoy: client,
      contextExtensions: { app: DEMO_APP },
      upstream: createIdentityUpstream({
        identityHeaders: Object.keys(app?.upstreamHeaders ?? {}),
        ...(app === undefined ? {} : { logoutPath: app.oidc.logoutPath }),
      }),
    });

    return {
      url: `${gateway.url}/`,
      issuer: provider.issuer,
      adminUrl: `http://${bracketed(host)}:${server.ports.admin}`,
      login: DEMO_USER.sub,
      server,
      provider,
      close: closeAll,
    };
  } catch (error) {
    failed(error instanceof Error ? error : new Error(String(error)));
    await closeAll();
    throw error;
  }
}
