/** The pipeline's steps that need nothing but the request and the app. */
import type { StepContext } from './pipeline.ts';
import { headersToScrub } from './app-runtime.ts';
import { setCookies, startLogin } from './login.ts';
import { ourCookiesOut } from './session-step.ts';
import { isBrowserNavigation, isGrpcCaller } from './request-kind.ts';
import { allow, jsonReply, type HeaderPair, type Verdict } from './verdict.ts';

/**
 * A public path is let through with the app's identity headers removed (SPEC §4.3–4.4), and
 * without our session and login-state cookies: they are credentials, and a public path is often
 * served by another, less trusted upstream (assets, a CDN origin). As for a session or bearer
 * allow, the rest of the `cookie` header goes on.
 */
export function allowPublicPath({ request, app, path }: StepContext): Verdict | undefined {
  if (!app.publicPaths.matches(request.method, path)) return undefined;
  const removeHeaders = headersToScrub(app, request);
  const cookie = ourCookiesOut(app, request);
  if (cookie === undefined) {
    return allow('public_path', { removeHeaders, identityRemovals: app.identityRemovals.all });
  }
  return allow('public_path', {
    upstreamHeaders: cookie === '' ? [] : [['cookie', cookie]],
    removeHeaders: cookie === '' ? [...removeHeaders, 'cookie'] : removeHeaders,
    identityRemovals: app.identityRemovals.all,
  });
}

const grpcUnauthenticated: readonly HeaderPair[] = [
  ['grpc-status', '16'],
  ['grpc-message', 'unauthenticated'],
];

/**
 * No usable session (SPEC §4.9): a browser navigation is sent to log in; anything else gets 401
 * with an RFC 6750 challenge and a JSON body (gRPC callers `grpc-status: 16`), never a 302.
 * `setCookie` carries lines that expire a dead session's cookies.
 */
export function unauthenticated(context: StepContext, setCookie: readonly string[] = []): Verdict {
  const { request, app } = context;
  if (isBrowserNavigation(request)) return startLogin(context, setCookie);
  const headers: HeaderPair[] = [
    ['www-authenticate', `Bearer realm="${app.name}"`],
    ...setCookies(setCookie),
  ];
  if (isGrpcCaller(request)) headers.push(...grpcUnauthenticated);
  return jsonReply('unauthenticated', 401, 'unauthenticated', 'authentication required', headers);
}

/** The last step: nothing else decided. */
export function loginOrDeny(context: StepContext): Verdict {
  return unauthenticated(context);
}
