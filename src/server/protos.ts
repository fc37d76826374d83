/** Loads the ext_authz v3 and health protos from `proto/` and types the messages as decoded and sent. */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Types only: grpc-js itself (a tenth of the server's module loading) is not needed to serve.
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/**
 * The proto-loader options every message type below is written against: proto field names
 * (snake_case), 64-bit integers as decimal strings, enums as numbers, unset fields absent (so
 * "unset" and "false" stay apart, which ext_authz relies on), and a virtual field naming the
 * member set in each oneof.
 */
export const protoLoaderOptions: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
});

/** The proto files the server serves, relative to {@link findProtoDir}. */
export const protoFiles: readonly string[] = Object.freeze([
  'envoy/service/auth/v3/external_auth.proto',
  'grpc/health/v1/health.proto',
]);

/** The fully qualified name of the ext_authz service, also a name health checks ask about. */
export const authorizationServiceName = 'envoy.service.auth.v3.Authorization';

/**
 * The `proto/` folder of this package, found by walking up from this module to the folder that
 * holds `package.json`, so it works from `src/` and from a compiled `dist/src/` alike.
 */
export function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'proto');
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + import.meta.url);
    dir = parent;
  }
}

/** Both service definitions, ready for `grpc.Server#addService`. */
export interface Protos {
  readonly authorization: grpc.ServiceDefinition;
  readonly health: grpc.ServiceDefinition;
}

/**
 * Parses the protos. Synchronous and comparatively slow (tens of milliseconds): call it once
 * when the server is built and pass the result on.
 */
export function loadProtos(): Protos {
  const protoDir = findProtoDir();
  const definition = protoLoader.loadSync([...protoFiles], {
    ...protoLoaderOptions,
    includeDirs: [protoDir],
  });
  return {
    authorization: withDirectCheckCodec(serviceAt(definition, authorizationServiceName), protoDir),
    health: serviceAt(definition, 'grpc.health.v1.Health'),
  };
}

/**
 * Check's messages without proto-loader's conversion passes: the request is used as protobufjs
 * decodes it (defaults on the prototype: empty strings, `null` messages, empty maps — every
 * reader of it tolerates those), and the response, built with the proto's own field names and
 * types, is encoded as it is. proto-loader's `toObject` after decoding and `fromObject` before
 * encoding cost more per Check than most of the decision.
 */
function withDirectCheckCodec(
  service: grpc.ServiceDefinition,
  protoDir: string,
): grpc.ServiceDefinition {
  const { request, response } = loadCheckTypes(protoDir);
  const check = service['Check'];
  if (check === undefined) throw new Error('Check missing from the Authorization service');
  return {
    ...service,
    Check: {
      ...check,
      requestDeserialize: (bytes: Buffer) => request.decode(bytes),
      responseSerialize: (message: object) => Buffer.from(response.encode(message).finish()),
    },
  };
}

/**
 * The protobufjs types of Check's request and response, with the proto's own field names: what
 * the Check transport decodes requests with and encodes responses with.
 */
export function loadCheckTypes(protoDir: string = findProtoDir()): {
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
} {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(protoDir, target));
  root.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true });
  return {
    request: root.lookupType('envoy.service.auth.v3.CheckRequest'),
    response: root.lookupType('envoy.service.auth.v3.CheckResponse'),
  };
}

/**
 * The service `name` (fully qualified) of proto-loader's definition: what grpc-js's
 * `loadPackageDefinition` would hang under the client constructor's `service`, unchanged.
 */
function serviceAt(
  definition: protoLoader.PackageDefinition,
  name: string,
): grpc.ServiceDefinition {
  const node = Object.hasOwn(definition, name) ? definition[name] : undefined;
  // A message or enum type carries `format`; a service is its methods, each with a `path`.
  if (node === undefined || 'format' in node || !Object.values(node).every((m) => 'path' in m)) {
    throw new Error(`service ${name} missing from the loaded protos`);
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// CheckRequest as decoded, with the fields the server reads: every field optional, maps as plain
// objects, bytes as Buffer.

/** `envoy.config.core.v3.HeaderValue`; Envoy fills `raw_value` under `encode_raw_headers`. */
export interface HeaderValue {
  readonly key?: string;
  readonly value?: string;
  readonly raw_value?: Buffer;
}

/** `AttributeContext.HttpRequest`. */
export interface HttpRequest {
  /** Envoy's stream id as a decimal string (not `x-request-id`). */
  readonly id?: string;
  readonly method?: string;
  /** Lower-case keys, pseudo-headers included, no `host`, duplicates joined with `,`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** `envoy.config.core.v3.HeaderMap`, sent instead of `headers` under `encode_raw_headers`. */
  readonly header_map?: { readonly headers?: readonly HeaderValue[] };
  /** Raw path including the query string. */
  readonly path?: string;
  readonly host?: string;
  readonly scheme?: string;
  readonly body?: string;
  readonly raw_body?: Buffer;
}

/** `envoy.service.auth.v3.AttributeContext`. */
export interface AttributeContext {
  /** The peer's `envoy.config.core.v3.Address`, when it is a socket address. */
  readonly source?: {
    readonly address?: { readonly socket_address?: { readonly address?: string } };
    /** URL-encoded PEM of the peer certificate (`include_peer_certificate`). */
    readonly certificate?: string;
  };
  readonly request?: { readonly http?: HttpRequest };
  readonly context_extensions?: Readonly<Record<string, string>>;
}

/** `envoy.service.auth.v3.CheckRequest` as the server receives it. */
export interface CheckRequest {
  readonly attributes?: AttributeContext;
}

// ---------------------------------------------------------------------------------------------
// grpc.health.v1

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export const ServingStatus = Object.freeze({
  SERVING: 1,
  NOT_SERVING: 2,
  /** Watch only: the service is not known (Check answers NOT_FOUND instead). */
  SERVICE_UNKNOWN: 3,
} as const);
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

/** `grpc.health.v1.HealthCheckRequest`; `""` asks about the whole server. */
export interface HealthCheckRequest {
  readonly service?: string;
}

/** `grpc.health.v1.HealthCheckResponse`. */
export interface HealthCheckResponse {
  readonly status: ServingStatus;
}
