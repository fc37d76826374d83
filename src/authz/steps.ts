/** The pipeline's steps that need nothing but the request and the app. */
import type { StepContext } from './pipeline.ts';
import { allow, jsonDeny, type HeaderPair, type Verdict } from './verdict.ts';

/** A public path is let through with the app's identity headers removed (SPEC §4.3–4.4). */
export function allowPublicPath({ request, app }: StepContext): Verdict | undefined {
  if (!app.publicPaths.matches(request)) return undefined;
  return allow('public_path', { removeHeaders: app.identityHeaders });
}

/** True for gRPC and gRPC-Web callers, which understand only `grpc-status`. */
export function isGrpcCaller(headers: ReadonlyMap<string, string>): boolean {
  return headers.get('content-type')?.startsWith('application/grpc') ?? false;
}

const grpcUnauthenticated: readonly HeaderPair[] = [
  ['grpc-status', '16'],
  ['grpc-message', 'unauthenticated'],
];

/** No session and nothing else decided: 401 with an RFC 6750 challenge. */
export function denyUnauthenticated({ request, app }: StepContext): Verdict {
  const headers: HeaderPair[] = [['www-authenticate', `Bearer realm="${app.name}"`]];
  if (isGrpcCaller(request.headers)) headers.push(...grpcUnauthenticated);
  return jsonDeny('unauthenticated', 401, 'unauthenticated', 'authentication required', headers);
}
