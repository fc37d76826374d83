/** The gRPC listener: `envoy.service.auth.v3.Authorization/Check` and `grpc.health.v1.Health`. */
import * as grpc from '@grpc/grpc-js';
import type { Authorizer } from '../authz/authorizer.ts';
import type { RawRequest } from '../authz/parse-request.ts';
import type { Logger } from '../observability/logger.ts';
import { toCheckResponse } from './check-response.ts';
import { healthServices, livenessService, type HealthState } from './health-state.ts';
import {
  ServingStatus,
  type CheckRequest,
  type CheckResponse,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type Protos,
} from './protos.ts';

const noPairs: readonly (readonly [string, string])[] = [];

/** Flattens the CheckRequest into the transport-neutral raw request. */
export function rawRequestFromCheck(check: CheckRequest): RawRequest {
  const attributes = check.attributes;
  const http = attributes?.request?.http;
  const headers = http?.header_map?.headers
    ? http.header_map.headers.map(
        (h) => [h.key ?? '', h.raw_value ? h.raw_value.toString('utf8') : (h.value ?? '')] as const,
      )
    : http?.headers
      ? Object.entries(http.headers)
      : noPairs;
  const pseudo = (name: string): string => {
    for (const [key, value] of headers) if (key === name) return value;
    return '';
  };
  return {
    id: http?.id ?? '',
    method: http?.method || pseudo(':method'),
    path: http?.path || pseudo(':path'),
    authority: http?.host || pseudo(':authority'),
    scheme: http?.scheme || pseudo(':scheme') || 'http',
    headers,
    peerAddress: attributes?.source?.address?.socket_address?.address ?? '',
    contextExtensions: attributes?.context_extensions
      ? Object.entries(attributes.context_extensions)
      : noPairs,
    body: http?.body || (http?.raw_body ? http.raw_body.toString('utf8') : ''),
  };
}

export interface GrpcServerDeps {
  readonly protos: Protos;
  readonly authorizer: Authorizer;
  readonly health: HealthState;
  readonly logger: Logger;
}

const servingCode = (status: 'SERVING' | 'NOT_SERVING'): ServingStatus =>
  status === 'SERVING' ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;

export function createGrpcServer(deps: GrpcServerDeps): grpc.Server {
  const { authorizer, health, logger } = deps;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });

  server.addService(deps.protos.authorization, {
    Check(
      call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
      callback: grpc.sendUnaryData<CheckResponse>,
    ): void {
      authorizer.check(rawRequestFromCheck(call.request)).then(
        ({ app, verdict }) => callback(null, toCheckResponse(verdict, app)),
        () => callback({ code: grpc.status.UNAVAILABLE, details: 'no decision could be made' }),
      );
    },
  });

  server.addService(deps.protos.health, {
    Check(
      call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: grpc.sendUnaryData<HealthCheckResponse>,
    ): void {
      const service = call.request.service ?? '';
      if (!healthServices.has(service)) {
        callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        return;
      }
      const status = service === livenessService ? 'SERVING' : health.status();
      callback(null, { status: servingCode(status) });
    },
    Watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>): void {
      const service = call.request.service ?? '';
      if (!healthServices.has(service)) {
        call.write({ status: ServingStatus.SERVICE_UNKNOWN });
        return;
      }
      if (service === livenessService) {
        call.write({ status: ServingStatus.SERVING });
        return;
      }
      call.write({ status: servingCode(health.status()) });
      const stop = health.watch((status) => call.write({ status: servingCode(status) }));
      call.on('cancelled', stop);
      call.on('close', stop);
      call.on('error', (error) => {
        stop();
        logger.debug({ err: error }, 'health watch ended');
      });
    },
  });
  return server;
}

/** Binds insecurely on `host:port` (TLS to Envoy is the mesh's job) and returns the port bound. */
export function bindGrpc(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    );
  });
}
