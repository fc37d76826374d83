/** Envoy's own ext_authz v3 protos (the snapshot in @grpc/grpc-js-xds), for the client side of tests and the demo gateway. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/**
 * Include dirs of the upstream snapshot. All four are needed: the Envoy protos import udpa/xds
 * annotations and protoc-gen-validate rules. The snapshot is about Envoy 1.31 and has no
 * `CheckResponse.error_response`.
 */
export function upstreamIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) => join(deps, d));
}

/** The same decode options the server uses, so decoded objects compare field for field. */
export const upstreamConversionOptions: protobuf.IConversionOptions = Object.freeze({
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
});

const entryFile = 'envoy/service/auth/v3/external_auth.proto';

/** The loaded upstream protos. Loading takes a few hundred ms: do it once per test file. */
export interface UpstreamProtos {
  readonly root: protobuf.Root;
  readonly CheckRequest: protobuf.Type;
  readonly CheckResponse: protobuf.Type;
  /** A grpc-js client class for `envoy.service.auth.v3.Authorization` (keepCase field names). */
  readonly AuthorizationClient: grpc.ServiceClientConstructor;
  /** Decodes with {@link upstreamConversionOptions}. */
  decode(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown>;
  /** Encodes a plain object (as proto-loader accepts it) to wire bytes. */
  encode(type: protobuf.Type, object: Record<string, unknown>): Buffer;
}

/**
 * Loads `.proto` files into one resolved root (field names as written, snake_case), searching
 * `includeDirs` in order for every import.
 */
export function loadProtoRoot(
  includeDirs: readonly string[],
  files: readonly string[],
): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** Parses Envoy's upstream protos into protobufjs types and a grpc-js client constructor. */
export function loadUpstreamProtos(): UpstreamProtos {
  const includeDirs = upstreamIncludeDirs();
  const root = loadProtoRoot(includeDirs, [entryFile]);

  // A second parse through proto-loader gives grpc-js the serializers it expects, with the
  // same keepCase names as the types above.
  const definition = protoLoader.loadSync(entryFile, {
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: false,
    oneofs: true,
    includeDirs,
  });
  const loaded = grpc.loadPackageDefinition(definition);
  const AuthorizationClient = (
    ((loaded.envoy as grpc.GrpcObject).service as grpc.GrpcObject).auth as grpc.GrpcObject
  ).v3 as grpc.GrpcObject;

  return {
    root,
    CheckRequest: root.lookupType('envoy.service.auth.v3.CheckRequest'),
    CheckResponse: root.lookupType('envoy.service.auth.v3.CheckResponse'),
    AuthorizationClient: AuthorizationClient.Authorization as grpc.ServiceClientConstructor,
    decode: (type, bytes) => type.toObject(type.decode(bytes), upstreamConversionOptions),
    // fromObject rather than verify+create: it accepts int64 as decimal strings and enum
    // numbers outside the named values (HTTP 418), exactly like grpc-js serializers do.
    encode: (type, object) => Buffer.from(type.encode(type.fromObject(object)).finish()),
  };
}

// ---------------------------------------------------------------------------------------------
// The shapes Envoy sends and receives, as the upstream protos decode them. Kept apart from the
// server's own types on purpose: tests assert on what Envoy would see.

/** Upstream `envoy.config.core.v3.HeaderValueOption`, decoded. */
export interface UpstreamHeaderValueOption {
  header?: { key?: string; value?: string; raw_value?: Buffer };
  append?: { value?: boolean };
  append_action?: number;
  keep_empty_value?: boolean;
}

/** Upstream `envoy.service.auth.v3.OkHttpResponse`, decoded. */
export interface UpstreamOkHttpResponse {
  headers?: UpstreamHeaderValueOption[];
  headers_to_remove?: string[];
  response_headers_to_add?: UpstreamHeaderValueOption[];
  query_parameters_to_set?: { key?: string; value?: string }[];
  query_parameters_to_remove?: string[];
  dynamic_metadata?: UpstreamStruct;
}

/** Upstream `envoy.service.auth.v3.DeniedHttpResponse`, decoded. */
export interface UpstreamDeniedHttpResponse {
  status?: { code?: number };
  headers?: UpstreamHeaderValueOption[];
  body?: string;
}

/** Upstream `google.protobuf.Struct`, decoded (protobufjs names Value's members in camelCase). */
export interface UpstreamStruct {
  fields?: Record<string, UpstreamValue>;
}

/** Upstream `google.protobuf.Value`, decoded. */
export interface UpstreamValue {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: UpstreamStruct;
  listValue?: { values?: UpstreamValue[] };
  kind?: string;
}

/** Upstream `envoy.service.auth.v3.CheckResponse`, decoded (this snapshot has no error_response). */
export interface UpstreamCheckResponse {
  status?: { code?: number; message?: string };
  denied_response?: UpstreamDeniedHttpResponse;
  ok_response?: UpstreamOkHttpResponse;
  http_response?: 'denied_response' | 'ok_response';
  dynamic_metadata?: UpstreamStruct;
}

/** Upstream `envoy.config.core.v3.SocketAddress`. */
export interface UpstreamSocketAddress {
  address?: string;
  port_value?: number;
  named_port?: string;
  protocol?: number;
  resolver_name?: string;
  ipv4_compat?: boolean;
}

/** Upstream `envoy.config.core.v3.Address`: one of the members. */
export interface UpstreamAddress {
  socket_address?: UpstreamSocketAddress;
  pipe?: { path?: string; mode?: number };
  envoy_internal_address?: { server_listener_name?: string; endpoint_id?: string };
}

/** Upstream `AttributeContext.Peer`. */
export interface UpstreamPeer {
  address?: UpstreamAddress;
  service?: string;
  labels?: Record<string, string>;
  principal?: string;
  certificate?: string;
}

/** Upstream `AttributeContext.HttpRequest`. */
export interface UpstreamHttpRequest {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] };
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  size?: string;
  protocol?: string;
  body?: string;
  raw_body?: Buffer;
}

/** Upstream `envoy.config.core.v3.Metadata`. */
export interface UpstreamMetadata {
  filter_metadata?: Record<string, UpstreamStruct>;
  typed_filter_metadata?: Record<string, { type_url?: string; value?: Buffer }>;
}

/** Upstream `envoy.service.auth.v3.CheckRequest` (as sent, or as a server decodes it). */
export interface UpstreamCheckRequest {
  attributes?: {
    source?: UpstreamPeer;
    destination?: UpstreamPeer;
    request?: { time?: { seconds?: string; nanos?: number }; http?: UpstreamHttpRequest };
    context_extensions?: Record<string, string>;
    metadata_context?: UpstreamMetadata;
    route_metadata_context?: UpstreamMetadata;
    tls_session?: { sni?: string };
  };
}
