/** The pipeline's first and last steps: public paths let through, and the fallback to login or 401. */
import type { Step, StepContext } from './pipeline.ts';
import { headersToScrub } from './app-runtime.ts';
import { unauthenticated } from './login.ts';
import { ourCookiesOut } from './session-step.ts';
import { allow, type Verdict } from './verdict.ts';

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
  const removeHeaders = headersToScrub(app, request);
  const cookie = ourCookiesOut(app, request);
  return allow('public_path', {
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
