/** The gRPC listener: `envoy.service.auth.v3.Authorization/Check` and `grpc.health.v1.Health`, on the lean transport. */
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { Authorizer, Outcome } from '../authz/authorizer.ts';
import type { RawRequest } from '../authz/parse-request.ts';
import type { Logger } from '../observability/logger.ts';
import type { TlsOptions } from 'node:tls';
import { CheckResponseEncoder } from './check-response.ts';
import {
  GrpcError,
  GrpcStatus,
  GrpcTransport,
  type GrpcMethod,
  type ServerStreamingMethod,
  type TransportLimits,
  type UnaryMethod,
} from './grpc-transport.ts';
import { healthServices, livenessService, type HealthState } from './health-state.ts';
import {
  ServingStatus,
  type CheckRequest,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type Protos,
} from './protos.ts';

const noPairs: readonly (readonly [string, string])[] = [];

/** Flattens the CheckRequest into the transport-neutral raw request. */
function rawRequestFromCheck(check: CheckRequest): RawRequest {
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
    peerCertificate: attributes?.source?.certificate ?? '',
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
  /** Connection, stream and buffer bounds (`limits.grpc`). */
  readonly limits: TransportLimits;
  /** TLS server options (`listen.tls`); default plain text. */
  readonly tls?: TlsOptions | undefined;
}

const noDecision = new GrpcError(GrpcStatus.UNAVAILABLE, 'no decision could be made');

/** A grpc-js method definition's path and codecs, for the transport. */
function codecOf<Req, Res>(
  service: ServiceDefinition,
  name: string,
): {
  readonly path: string;
  readonly decode: (bytes: Buffer) => Req;
  readonly encode: (message: Res) => Buffer;
} {
  const method = service[name];
  if (method === undefined) throw new Error(`method ${name} missing from the loaded protos`);
  return {
    path: method.path,
    decode: method.requestDeserialize as (bytes: Buffer) => Req,
    encode: method.responseSerialize as (message: Res) => Buffer,
  };
}

export function createGrpcServer(deps: GrpcServerDeps): GrpcTransport {
  const { authorizer, health, logger } = deps;
  const check = codecOf<CheckRequest, never>(deps.protos.authorization, 'Check');
  const healthCheck = codecOf<HealthCheckRequest, HealthCheckResponse>(deps.protos.health, 'Check');
  const healthWatch = codecOf<HealthCheckRequest, HealthCheckResponse>(deps.protos.health, 'Watch');

  // The encoder writes the outcome straight to protobuf bytes, and the bytes of a repeated
  // allow (a hot session's, a hot token's) are reused. Encoding happens in the handler, where
  // the request id is known for the log line of a failure.
  const encoder = new CheckResponseEncoder();
  const encoded = (outcome: Outcome, requestId: string): Buffer => {
    try {
      return encoder.encode(outcome.verdict, outcome.app);
    } catch (error) {
      logger.error({ err: error, requestId }, 'check response could not be encoded');
      throw noDecision;
    }
  };
  const checkMethod: UnaryMethod<CheckRequest, Buffer> = {
    kind: 'unary',
    decode: check.decode,
    encode: (bytes) => bytes,
    // Whatever throws is logged once with the request id and answered with an error status,
    // Envoy's error path; a rejection of `decide` was logged by the authorizer already.
    handle: (request, call) => {
      let requestId = '';
      try {
        const raw = rawRequestFromCheck(request);
        requestId = raw.id;
        const outcome = authorizer.decide(raw, call);
        if (outcome instanceof Promise) return outcome.then((done) => encoded(done, raw.id));
        return encoded(outcome, requestId);
      } catch (error) {
        if (error !== noDecision) {
          logger.error({ err: error, requestId }, 'check failed without a decision');
        }
        throw noDecision;
      }
    },
    unexpected: noDecision,
  };

  const healthCheckMethod: UnaryMethod<HealthCheckRequest, HealthCheckResponse> = {
    kind: 'unary',
    decode: healthCheck.decode,
    encode: healthCheck.encode,
    handle: (request) => {
      const service = request.service ?? '';
      if (!healthServices.has(service))
        throw new GrpcError(GrpcStatus.NOT_FOUND, 'unknown service');
      return { status: service === livenessService ? ServingStatus.SERVING : health.status() };
    },
  };

  const healthWatchMethod: ServerStreamingMethod<HealthCheckRequest, HealthCheckResponse> = {
    kind: 'server-streaming',
    decode: healthWatch.decode,
    encode: healthWatch.encode,
    handle: (request, stream) => {
      const service = request.service ?? '';
      if (!healthServices.has(service)) {
        stream.write({ status: ServingStatus.SERVICE_UNKNOWN });
        return;
      }
      if (service === livenessService) {
        stream.write({ status: ServingStatus.SERVING });
        return;
      }
      stream.write({ status: health.status() });
      stream.onClose(health.watch((status) => stream.write({ status })));
    },
  };

  return new GrpcTransport({
    methods: new Map<string, GrpcMethod>([
      [check.path, checkMethod],
      [healthCheck.path, healthCheckMethod],
      [healthWatch.path, healthWatchMethod],
    ]),
    limits: deps.limits,
    logger,
    tls: deps.tls,
  });
}
