/** The pipeline's first and last steps: public paths and CORS preflights let through, and the fallback to login or 401. */
import type { Step, StepContext } from './pipeline.ts';
import { headersToScrub, type AppRuntime } from './app-runtime.ts';
import { unauthenticated } from './login.ts';
import type { RequestModel } from './request.ts';
import { ourCookiesOut } from './session-step.ts';
import { allow, type AllowReason, type Verdict } from './verdict.ts';

/**
 * A public path is let through with the app's identity headers removed (SPEC §4.3–4.4), and
 * without our session and login-state cookies: they are credentials, and a public path is often
 * served by another, less trusted upstream (assets, a CDN origin). As for a session or bearer
 * allow, the rest of the `cookie` header goes on.
 */
export function createPublicPathStep(): Step {
  return allowPublicPath;
}

function allowPublicPath({ request, app, path }: StepContext): Verdict | undefined {
  if (!app.publicPaths.matches(request.method, path)) return undefined;
  return allowWithoutIdentity('public_path', app, request);
}

/**
 * A CORS preflight (WHATWG Fetch §3.2.2, `cors.allowPreflight`): browsers send it without
 * credentials, so it could never pass a login. Only the exact shape of one passes: `OPTIONS`
 * with a non-empty `Origin` and `Access-Control-Request-Method`. It goes on as a public path
 * does, without identity headers or our cookies, whatever cookie or token it carries.
 */
export function createPreflightStep(): Step {
  return allowPreflight;
}

function allowPreflight({ request, app }: StepContext): Verdict | undefined {
  if (!app.config.cors.allowPreflight || request.method !== 'OPTIONS') return undefined;
  const { headers } = request;
  const origin = headers.get('origin');
  const method = headers.get('access-control-request-method');
  if (origin === undefined || origin === '' || method === undefined || method === '') {
    return undefined;
  }
  return allowWithoutIdentity('preflight', app, request);
}

function allowWithoutIdentity(
  reason: AllowReason,
  app: AppRuntime,
  request: RequestModel,
): Verdict {
  const removeHeaders = headersToScrub(app, request);
  const cookie = ourCookiesOut(app, request);
  return allow(reason, {
    upstreamHeaders: cookie === undefined || cookie === '' ? [] : [['cookie', cookie]],
    removeHeaders: cookie === '' ? [...removeHeaders, 'cookie'] : removeHeaders,
    identityRemovals: app.identityRemovals.all,
  });
}

/** The last step: nothing else decided, so login or 401. */
export function createLoginOrDenyStep(): Step {
  return function loginOrDeny(context: StepContext): Verdict | Promise<Verdict> {
    return unauthenticated(context);
  };
}
