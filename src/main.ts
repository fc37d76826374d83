/**
 * The composition root: config → logger → metrics → pipeline → servers, built in order and shut
 * down in reverse. Nothing long-lived is created anywhere else.
 */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { buildAppRuntime, type AppRuntime } from './authz/app-runtime.ts';
import { Authorizer, type Runtime } from './authz/authorizer.ts';
import { handleCallback } from './authz/login.ts';
import { createLogoutStep } from './authz/logout.ts';
import { Pipeline } from './authz/pipeline.ts';
import { Refresher } from './authz/session-refresh.ts';
import { createSessionStep } from './authz/session-step.ts';
import { allowPublicPath, loginOrDeny, unauthenticated } from './authz/steps.ts';
import type { AppConfig, Config } from './config/schema.ts';
import { createOidcClient, type OidcClient } from './oidc/oidc-client.ts';
import { SessionManager } from './session/session-manager.ts';
import { SessionRevocations } from './session/session-revocations.ts';
import { createAppKeyspaces } from './store/keyspaces.ts';
import { createMemoryBackend } from './store/memory-backend.ts';
import type { StoreBackend } from './store/store-backend.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { createAdminServer } from './server/admin-server.ts';
import { bindGrpc, createGrpcServer } from './server/grpc-server.ts';
import { HealthState, type ReadinessProbe } from './server/health-state.ts';
import { createHttpServer } from './server/http-server.ts';
import { loadProtos } from './server/protos.ts';

export interface StartOptions {
  /** Overrides the logger built from `config.log`. */
  readonly logger?: Logger;
  /** The clock; `Date.now` by default. */
  readonly now?: () => number;
}

/** A running server. */
export interface ServerHandle {
  readonly ports: { readonly grpc: number; readonly http: number; readonly admin: number };
  readonly health: HealthState;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The decision entry point both listeners call; for in-process measurement. */
  readonly authorizer: Authorizer;
  /** Applies a new, already validated config; listener addresses need a restart. */
  reload(config: Config): void;
  /** Drains (NOT_SERVING, in-flight checks finish) then closes every listener. */
  close(): Promise<void>;
}

/** Long-lived services that outlive a config reload. */
interface Services {
  readonly logger: Logger;
  readonly now: () => number;
  readonly backend: StoreBackend;
  readonly refresher: Refresher;
  /** OIDC clients by their app's name and `oidc` block, reused while that block is unchanged. */
  readonly oidcClients: Map<string, OidcClient>;
}

function oidcClientFor(app: AppConfig, services: Services): OidcClient {
  const key = JSON.stringify([app.name, app.oidc]);
  let client = services.oidcClients.get(key);
  if (client === undefined) {
    client = createOidcClient(
      { ...app.oidc, appName: app.name },
      { now: services.now, logger: services.logger, fetchTimeoutMs: 5_000 },
    );
    services.oidcClients.set(key, client);
  }
  return client;
}

function buildApp(app: AppConfig, services: Services): AppRuntime {
  const keyspaces = createAppKeyspaces(services.backend, {
    app: app.name,
    sessionMaxAge: app.session.maxAge,
    loginTimeout: app.session.loginTimeout,
    refreshResultTtl: app.refresh.resultTtl,
    now: services.now,
  });
  const revocations = new SessionRevocations(keyspaces, services.now);
  const sessions = new SessionManager(app.session, {
    now: services.now,
    serverSessions: keyspaces,
    loginReplayMarks: keyspaces.loginReplayMarks,
    isRevoked: revocations.isRevoked,
  });
  return buildAppRuntime(app, { oidc: oidcClientFor(app, services), sessions, revocations });
}

/** Everything built from one config that a reload replaces. */
function buildRuntime(
  config: Config,
  services: Services,
): Runtime & { readonly apps: readonly AppRuntime[] } {
  const apps = config.apps.map((app) => buildApp(app, services));
  const inUse = new Set(apps.map((app) => app.oidc));
  for (const [key, client] of services.oidcClients) {
    if (!inUse.has(client)) {
      client.close();
      services.oidcClients.delete(key);
    }
  }
  return {
    apps,
    pipeline: new Pipeline({
      apps,
      allowUnmatched: config.allowUnmatched,
      steps: [
        allowPublicPath,
        handleCallback,
        createLogoutStep(services.logger),
        createSessionStep({ refresher: services.refresher, now: services.now, unauthenticated }),
        loginOrDeny,
      ],
    }),
    parseOptions: {
      trustedHops: config.request.trustedHops,
      maxHeaderBytes: config.request.maxHeaderBytes,
    },
  };
}

/** One probe per app: ready once its provider's discovery has answered. */
function discoveryProbes(apps: readonly AppRuntime[], health: HealthState): ReadinessProbe[] {
  return apps.map((app) => {
    app.oidc.ready.then(
      () => health.refresh(),
      () => undefined,
    );
    return {
      name: `app:${app.name}`,
      waitingFor: () => {
        const status = app.oidc.status();
        return status.state === 'ready'
          ? undefined
          : `discovery at ${status.issuer}: ${status.lastError ?? 'waiting'}`;
      },
    };
  });
}

/** Splits `host:port` (`[::1]:9001` for IPv6). */
export function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(colon + 1)) };
}

function listen(server: HttpServer, address: string): Promise<number> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

function shutdownGrpc(server: grpc.Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, timeoutMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<ServerHandle> {
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const metrics = new Metrics();
  const health = new HealthState();
  const backend = createMemoryBackend({ now: options.now ?? Date.now });
  const services: Services = {
    logger,
    now: options.now ?? Date.now,
    backend,
    refresher: new Refresher(),
    oidcClients: new Map(),
  };
  let current = config;
  const runtime = buildRuntime(config, services);
  const authorizer = new Authorizer(runtime, metrics, logger);

  const grpcServer = createGrpcServer({ protos: loadProtos(), authorizer, health, logger });
  const httpServer = createHttpServer({
    authorizer,
    logger,
    pathPrefix: config.listen.httpPathPrefix,
  });
  const adminServer = createAdminServer(health, metrics);

  const ports = {
    grpc: await bindGrpc(grpcServer, config.listen.grpc),
    http: await listen(httpServer, config.listen.http),
    admin: await listen(adminServer, config.listen.admin),
  };
  health.setProbes(discoveryProbes(runtime.apps, health));
  metrics.setReady('config', true);
  logger.info({ ports, apps: config.apps.map((a) => a.name) }, 'serving');

  return {
    ports,
    health,
    metrics,
    logger,
    authorizer,
    reload(next: Config): void {
      const moved = (['grpc', 'http', 'admin'] as const).filter(
        (k) => next.listen[k] !== current.listen[k],
      );
      if (moved.length > 0)
        logger.warn({ listeners: moved }, 'listen addresses change only on restart');
      const rebuilt = buildRuntime(next, services);
      authorizer.replace(rebuilt);
      health.setProbes(discoveryProbes(rebuilt.apps, health));
      current = next;
      metrics.configReloaded(true);
      logger.info({ apps: next.apps.map((a) => a.name) }, 'configuration reloaded');
    },
    async close(): Promise<void> {
      health.startDraining();
      logger.info({}, 'draining');
      await shutdownGrpc(grpcServer, current.shutdown.drainTimeout);
      await Promise.all([closeHttp(httpServer), closeHttp(adminServer)]);
      for (const client of services.oidcClients.values()) client.close();
      await backend.close();
      logger.info({}, 'stopped');
    },
  };
}
