/** Envoy in front of a test server in each ext_authz mode, with the header lists the docs ship. */
import type { ExtAuthzCaller } from './browser.ts';
import { EnvoyClient, HttpModeClient } from './envoy-client.ts';
import type { TestServer } from './test-server.ts';
import type { UpstreamProtos } from './upstream-protos.ts';

export interface EnvoyMode {
  readonly name: 'grpc' | 'http';
  readonly envoy: ExtAuthzCaller;
  close(): void;
}

/** `allowed_headers` of `envoy/envoy-http.yaml` (docs/envoy.md, HTTP mode). */
export const shippedAllowedHeaders: readonly string[] = [
  'cookie',
  'accept',
  'content-type',
  'upgrade',
  'x-requested-with',
  'sec-fetch-mode',
  'x-forwarded-proto',
  'x-forwarded-for',
  'x-request-id',
];

/** `allowed_client_headers` of `envoy/envoy-http.yaml`. */
const shippedClientHeaders: readonly string[] = [
  'location',
  'set-cookie',
  'www-authenticate',
  'retry-after',
  'content-type',
  'cache-control',
  'grpc-status',
  'grpc-message',
];

/**
 * A gRPC-mode and an HTTP-mode Envoy in front of `server`. `identityHeaders` are the app's
 * identity headers the HTTP mode's `allowed_upstream_headers` lets through (the shipped config
 * has the prefix `x-auth-request-`), beside `cookie`, `authorization` and `x-id-token`.
 */
export function bothModes(
  server: TestServer,
  protos: UpstreamProtos,
  identityHeaders: readonly string[],
): EnvoyMode[] {
  const grpc = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  const http = new HttpModeClient({
    baseUrl: server.httpBase,
    timeoutMs: 5_000,
    allowedHeaders: shippedAllowedHeaders,
    allowedUpstreamHeaders: ['cookie', 'authorization', 'x-id-token', ...identityHeaders],
    allowedClientHeadersOnSuccess: ['set-cookie'],
    allowedClientHeaders: shippedClientHeaders,
  });
  return [
    { name: 'grpc', envoy: grpc, close: () => grpc.close() },
    { name: 'http', envoy: http, close: () => http.close() },
  ];
}
