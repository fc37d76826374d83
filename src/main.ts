/**
 * The composition root: config → logger → metrics → pipeline → servers, built in order and shut
 * down in reverse. Nothing long-lived is created anywhere else.
 */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { buildAppRuntime } from './authz/app-runtime.ts';
import { Authorizer, type Runtime } from './authz/authorizer.ts';
import { Pipeline } from './authz/pipeline.ts';
import { allowPublicPath, denyUnauthenticated } from './authz/steps.ts';
import type { Config } from './config/schema.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { createAdminServer } from './server/admin-server.ts';
import { bindGrpc, createGrpcServer } from './server/grpc-server.ts';
import { HealthState } from './server/health-state.ts';
import { createHttpServer } from './server/http-server.ts';
import { loadProtos } from './server/protos.ts';

export interface StartOptions {
  /** Overrides the logger built from `config.log`. */
  readonly logger?: Logger;
}

/** A running server. */
export interface ServerHandle {
  readonly ports: { readonly grpc: number; readonly http: number; readonly admin: number };
  readonly health: HealthState;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Applies a new, already validated config; listener addresses need a restart. */
  reload(config: Config): void;
  /** Drains (NOT_SERVING, in-flight checks finish) then closes every listener. */
  close(): Promise<void>;
}

/** Everything built from one config that a reload replaces. */
function buildRuntime(config: Config): Runtime {
  return {
    pipeline: new Pipeline({
      apps: config.apps.map((app) => buildAppRuntime(app)),
      allowUnmatched: config.allowUnmatched,
      steps: [allowPublicPath, denyUnauthenticated],
    }),
    parseOptions: {
      trustedHops: config.request.trustedHops,
      maxHeaderBytes: config.request.maxHeaderBytes,
    },
  };
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
  let current = config;
  const authorizer = new Authorizer(buildRuntime(config), metrics, logger);

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
  health.setProbes([]);
  metrics.setReady('config', true);
  logger.info({ ports, apps: config.apps.map((a) => a.name) }, 'serving');

  return {
    ports,
    health,
    metrics,
    logger,
    reload(next: Config): void {
      const moved = (['grpc', 'http', 'admin'] as const).filter(
        (k) => next.listen[k] !== current.listen[k],
      );
      if (moved.length > 0)
        logger.warn({ listeners: moved }, 'listen addresses change only on restart');
      authorizer.replace(buildRuntime(next));
      current = next;
      metrics.configReloaded(true);
      logger.info({ apps: next.apps.map((a) => a.name) }, 'configuration reloaded');
    },
    async close(): Promise<void> {
      health.startDraining();
      logger.info({}, 'draining');
      await shutdownGrpc(grpcServer, current.shutdown.drainTimeout);
      await Promise.all([closeHttp(httpServer), closeHttp(adminServer)]);
      logger.info({}, 'stopped');
    },
  };
}
