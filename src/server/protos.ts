/** Loads the ext_authz v3 and health protos from `proto/` and types the messages as decoded and sent. */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
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

/** Fully qualified names of the services, also the names health checks ask about. */
const authorizationServiceName = 'envoy.service.auth.v3.Authorization';
const healthServiceName = 'grpc.health.v1.Health';

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
  const root = grpc.loadPackageDefinition(definition);
  return {
    authorization: withDirectCheckCodec(serviceAt(root, authorizationServiceName), protoDir),
    health: serviceAt(root, healthServiceName),
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

function serviceAt(root: grpc.GrpcObject, name: string): grpc.ServiceDefinition {
  let node: grpc.GrpcObject[string] | undefined = root;
  for (const part of name.split('.')) {
    node = isNamespace(node) ? node[part] : undefined;
  }
  if (typeof node !== 'function' || !('service' in node)) {
    throw new Error(`service ${name} missing from the loaded protos`);
  }
  return node.service;
}

function isNamespace(node: grpc.GrpcObject[string] | undefined): node is grpc.GrpcObject {
  return typeof node === 'object' && node !== null && !('format' in node);
}

// ---------------------------------------------------------------------------------------------
// google.protobuf well-known types, as protobufjs decodes them (its bundled definitions use
// camelCase names inside Value even with keepCase).

/** `google.protobuf.Struct`. A plain JSON object is NOT a Struct: it would encode as empty. */
export interface Struct {
  readonly fields?: Readonly<Record<string, Value>>;
}

/** `google.protobuf.Value`; exactly one member is set. `kind` is present only when decoded. */
export interface Value {
  readonly nullValue?: 0;
  readonly numberValue?: number;
  readonly stringValue?: string;
  readonly boolValue?: boolean;
  readonly structValue?: Struct;
  readonly listValue?: ListValue;
  readonly kind?:
    'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
}

/** `google.protobuf.ListValue`. */
export interface ListValue {
  readonly values?: readonly Value[];
}

/** `google.protobuf.Any`. */
export interface Any {
  readonly type_url?: string;
  readonly value?: Buffer;
}

/** `google.protobuf.Timestamp`; `seconds` is an int64, hence a decimal string. */
export interface Timestamp {
  readonly seconds?: string;
  readonly nanos?: number;
}

/** `google.rpc.Status`: `code` is a gRPC status code (0 OK, 7 PERMISSION_DENIED, …). */
export interface RpcStatus {
  readonly code?: number;
  readonly message?: string;
  readonly details?: readonly Any[];
}

// ---------------------------------------------------------------------------------------------
// CheckRequest as decoded: every field optional, maps as plain objects, bytes as Buffer.

/** `envoy.config.core.v3.SocketAddress`. */
export interface SocketAddress {
  readonly protocol?: number;
  readonly address?: string;
  readonly port_value?: number;
  readonly named_port?: string;
  readonly resolver_name?: string;
  readonly ipv4_compat?: boolean;
  readonly port_specifier?: 'port_value' | 'named_port';
}

/** `envoy.config.core.v3.Pipe` (a Unix domain socket). */
export interface Pipe {
  readonly path?: string;
  readonly mode?: number;
}

/** `envoy.config.core.v3.EnvoyInternalAddress`. */
export interface EnvoyInternalAddress {
  readonly server_listener_name?: string;
  readonly endpoint_id?: string;
  readonly address_name_specifier?: 'server_listener_name';
}

/** `envoy.config.core.v3.Address`; `address` names the member that is set. */
export interface Address {
  readonly socket_address?: SocketAddress;
  readonly pipe?: Pipe;
  readonly envoy_internal_address?: EnvoyInternalAddress;
  readonly address?: 'socket_address' | 'pipe' | 'envoy_internal_address';
}

/** `envoy.config.core.v3.HeaderValue`; Envoy fills `raw_value` under `encode_raw_headers`. */
export interface HeaderValue {
  readonly key?: string;
  readonly value?: string;
  readonly raw_value?: Buffer;
}

/** `envoy.config.core.v3.HeaderMap`: headers in order, duplicates not merged. */
export interface HeaderMap {
  readonly headers?: readonly HeaderValue[];
}

/** `envoy.config.core.v3.Metadata`, keyed by filter name. */
export interface Metadata {
  readonly filter_metadata?: Readonly<Record<string, Struct>>;
  readonly typed_filter_metadata?: Readonly<Record<string, Any>>;
}

/** `AttributeContext.Peer`. */
export interface Peer {
  readonly address?: Address;
  readonly service?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Peer certificate URI SAN / DNS SAN / subject; TLS only (Istio: the SPIFFE id). */
  readonly principal?: string;
  readonly certificate?: string;
}

/** `AttributeContext.HttpRequest`. */
export interface HttpRequest {
  /** Envoy's stream id as a decimal string (not `x-request-id`). */
  readonly id?: string;
  readonly method?: string;
  /** Lower-case keys, pseudo-headers included, no `host`, duplicates joined with `,`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent instead of `headers` when Envoy's `encode_raw_headers` is on. */
  readonly header_map?: HeaderMap;
  /** Raw path including the query string. */
  readonly path?: string;
  readonly host?: string;
  readonly scheme?: string;
  /** Empty as sent by Envoy: the query is inside `path`. */
  readonly query?: string;
  readonly fragment?: string;
  /** Body bytes buffered, int64 as a decimal string. */
  readonly size?: string;
  readonly protocol?: string;
  readonly body?: string;
  readonly raw_body?: Buffer;
}

/** `AttributeContext.Request`. */
export interface AttributeRequest {
  readonly time?: Timestamp;
  readonly http?: HttpRequest;
}

/** `AttributeContext.TLSSession`. */
export interface TlsSession {
  readonly sni?: string;
}

/** `envoy.service.auth.v3.AttributeContext`. */
export interface AttributeContext {
  readonly source?: Peer;
  readonly destination?: Peer;
  readonly request?: AttributeRequest;
  readonly context_extensions?: Readonly<Record<string, string>>;
  readonly metadata_context?: Metadata;
  readonly tls_session?: TlsSession;
  readonly route_metadata_context?: Metadata;
}

/** `envoy.service.auth.v3.CheckRequest` as the server receives it. */
export interface CheckRequest {
  readonly attributes?: AttributeContext;
}

// ---------------------------------------------------------------------------------------------
// CheckResponse as the server builds it.

/** `envoy.config.core.v3.HeaderValueOption` to send. */
export interface HeaderValueOption {
  readonly header: { readonly key: string; readonly value: string };
  /**
   * `google.protobuf.BoolValue`, hence the wrapper. Always set it: unset means overwrite for
   * request headers but append (1.31+) or replace (older) for response headers.
   */
  readonly append?: { readonly value: boolean };
  readonly append_action?: number;
  readonly keep_empty_value?: boolean;
}

/** `envoy.config.core.v3.QueryParameter`. */
export interface QueryParameter {
  readonly key: string;
  readonly value: string;
}

/** `envoy.service.auth.v3.OkHttpResponse`: changes to the forwarded request and the response. */
export interface OkHttpResponse {
  /** Set on the upstream request (overwrite unless `append.value` is true). */
  readonly headers?: readonly HeaderValueOption[];
  /** Removed from the upstream request after the sets; pseudo-headers and `host` are immune. */
  readonly headers_to_remove?: readonly string[];
  /** Applied to the response going back to the client. */
  readonly response_headers_to_add?: readonly HeaderValueOption[];
  readonly query_parameters_to_set?: readonly QueryParameter[];
  readonly query_parameters_to_remove?: readonly string[];
  /** Deprecated upstream; use `CheckResponse.dynamic_metadata`. */
  readonly dynamic_metadata?: Struct;
}

/** `envoy.service.auth.v3.DeniedHttpResponse`: the local reply sent instead of forwarding. */
export interface DeniedHttpResponse {
  /** HTTP status; Envoy uses 403 when unset. */
  readonly status?: { readonly code: number };
  /** Send with `append: { value: false }`: Envoy <= 1.36 drops `append: true` entries on deny. */
  readonly headers?: readonly HeaderValueOption[];
  readonly body?: string;
}

/**
 * `envoy.service.auth.v3.CheckResponse`. `ok_response`, `denied_response` and `error_response`
 * form a oneof: set at most one. `status.code` 0 (or `status` unset) allows, anything else denies.
 */
export interface CheckResponse {
  readonly status?: RpcStatus;
  readonly ok_response?: OkHttpResponse;
  readonly denied_response?: DeniedHttpResponse;
  /** Honoured by Envoy 1.37+ only. */
  readonly error_response?: DeniedHttpResponse;
  /** Lands under the `envoy.filters.http.ext_authz` metadata namespace. */
  readonly dynamic_metadata?: Struct;
}

// ---------------------------------------------------------------------------------------------
// grpc.health.v1

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export const ServingStatus = Object.freeze({
  UNKNOWN: 0,
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
