/**
 * Envoy in front of a test server in each ext_authz mode, with the header lists the repository
 * ships: `envoy/envoy-http.yaml` and Istio's `envoyExtAuthzHttp` in
 * `istio/mesh-config/extension-providers.yaml`, read from the files so the tests follow them.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { repoPath } from '../deploy/repo-path.ts';
import type { ExtAuthzCaller } from './browser.ts';
import {
  EnvoyClient,
  HttpModeClient,
  type EnvoyClientOptions,
  type HeaderPattern,
  type HttpModeClientOptions,
} from './envoy-client.ts';
import type { TestServer } from './test-server.ts';
import { loadUpstreamProtos, type UpstreamProtos } from './upstream-protos.ts';

export interface EnvoyMode {
  /** `grpc`, or `http` followed by where its lists come from. */
  readonly name: string;
  readonly envoy: ExtAuthzCaller;
  close(): void;
}

/** Check deadline of every Envoy in front of a test server: generous, so only a hang fails. */
const checkTimeoutMs = 5_000;

/** A gRPC-mode Envoy in front of `server`; it loads the upstream protos unless given them. */
export function grpcModeEnvoy(
  server: TestServer,
  options: Omit<EnvoyClientOptions, 'target'> = {},
): EnvoyClient {
  return new EnvoyClient({ target: server.grpcTarget, timeoutMs: checkTimeoutMs, ...options });
}

/** An HTTP-mode Envoy in front of `server`, with the header lists in `options`. */
export function httpModeEnvoy(
  server: TestServer,
  options: Omit<HttpModeClientOptions, 'baseUrl'> = {},
): HttpModeClient {
  return new HttpModeClient({ baseUrl: server.httpBase, timeoutMs: checkTimeoutMs, ...options });
}

/** The HTTP-mode lists of one shipped config. */
interface HttpLists {
  readonly allowedHeaders: readonly HeaderPattern[];
  readonly allowedUpstreamHeaders: readonly HeaderPattern[];
  readonly allowedClientHeadersOnSuccess: readonly HeaderPattern[];
  readonly allowedClientHeaders: readonly HeaderPattern[];
}

type Json = Record<string, unknown>;

/** The first object under `node` (depth first) that has the key `key`. */
function findWithKey(node: unknown, key: string): Json | undefined {
  if (typeof node !== 'object' || node === null) return undefined;
  if (!Array.isArray(node) && key in node) return node as Json;
  for (const child of Object.values(node)) {
    const found = findWithKey(child, key);
    if (found !== undefined) return found;
  }
  return undefined;
}

function patterns(list: unknown): HeaderPattern[] {
  const items = (list as { patterns?: unknown[] } | undefined)?.patterns ?? [];
  return items.map((item) => item as HeaderPattern);
}

/** `envoy/envoy-http.yaml`'s ext_authz `http_service` lists. */
export function shippedEnvoyHttpLists(): HttpLists {
  const document: unknown = parse(readFileSync(repoPath('envoy/envoy-http.yaml'), 'utf8'));
  const filter = findWithKey(document, 'http_service');
  const response = (filter?.['http_service'] as Json | undefined)?.['authorization_response'] as
    Json | undefined;
  if (filter === undefined || response === undefined) {
    throw new Error('envoy/envoy-http.yaml has no http_service authorization_response');
  }
  return {
    allowedHeaders: patterns(filter['allowed_headers']),
    allowedUpstreamHeaders: patterns(response['allowed_upstream_headers']),
    allowedClientHeadersOnSuccess: patterns(response['allowed_client_headers_on_success']),
    allowedClientHeaders: patterns(response['allowed_client_headers']),
  };
}

/** Istio's header list entries: `name`, `prefix*` (Istio also has `*suffix`, unused here). */
function istioPatterns(list: unknown): HeaderPattern[] {
  return ((list as string[] | undefined) ?? []).map((entry) =>
    entry.endsWith('*') ? { prefix: entry.slice(0, -1) } : { exact: entry },
  );
}

/** `istio/mesh-config/extension-providers.yaml`'s `envoyExtAuthzHttp` lists. */
export function shippedIstioHttpLists(): HttpLists {
  const document: unknown = parse(
    readFileSync(repoPath('istio/mesh-config/extension-providers.yaml'), 'utf8'),
  );
  const provider = findWithKey(document, 'envoyExtAuthzHttp')?.['envoyExtAuthzHttp'] as
    Json | undefined;
  if (provider === undefined)
    throw new Error('istio/mesh-config/extension-providers.yaml has no HTTP provider');
  return {
    allowedHeaders: istioPatterns(provider['includeRequestHeadersInCheck']),
    allowedUpstreamHeaders: istioPatterns(provider['headersToUpstreamOnAllow']),
    allowedClientHeadersOnSuccess: istioPatterns(provider['headersToDownstreamOnAllow']),
    allowedClientHeaders: istioPatterns(provider['headersToDownstreamOnDeny']),
  };
}

/** The lists with nothing but `cookie` and the navigation hints sent to the check. */
function withoutIdentityInCheck(lists: HttpLists): HttpLists {
  const identity = (pattern: HeaderPattern): boolean => {
    const text =
      typeof pattern === 'string' ? pattern : 'exact' in pattern ? pattern.exact : pattern.prefix;
    return text.startsWith('x-auth-request') || text === 'x-id-token';
  };
  return { ...lists, allowedHeaders: lists.allowedHeaders.filter((p) => !identity(p)) };
}

/** The modes {@link bothModes} makes, in order; known before any server starts. */
export const modeNames = [
  'grpc',
  'grpc (encode_raw_headers)',
  'http (envoy-http.yaml)',
  'http (Istio provider)',
  'http (identity headers not sent to the check)',
] as const;

/**
 * gRPC-mode Envoys (header map, and raw header lines) and HTTP-mode ones in front of `server`:
 * with the lists of
 * `envoy/envoy-http.yaml`, of Istio's provider, and of an operator who sends no identity header
 * to the check (so the server never sees a forged one).
 */
export function bothModes(
  server: TestServer,
  protos: UpstreamProtos = loadUpstreamProtos(),
): EnvoyMode[] {
  const grpc = grpcModeEnvoy(server, { protos });
  const raw = grpcModeEnvoy(server, { protos, encodeRawHeaders: true });
  const http = (name: string, lists: HttpLists): EnvoyMode => {
    const client = httpModeEnvoy(server, lists);
    return { name, envoy: client, close: () => client.close() };
  };
  const envoyLists = shippedEnvoyHttpLists();
  return [
    { name: modeNames[0], envoy: grpc, close: () => grpc.close() },
    { name: modeNames[1], envoy: raw, close: () => raw.close() },
    http(modeNames[2], envoyLists),
    http(modeNames[3], shippedIstioHttpLists()),
    http(modeNames[4], withoutIdentityInCheck(envoyLists)),
  ];
}
