/** The answer when a session does not fit in the cookie store (issue: 1,500 groups in an ID token). */
import type { Logger } from '../observability/logger.ts';
import type { SessionTooLargeError } from '../errors.ts';
import { htmlPage } from './pages.ts';
import type { StepContext } from './pipeline.ts';
import { isBrowserNavigation } from './request-kind.ts';
import { jsonReply, setCookies, type HeaderPair, type Verdict } from './verdict.ts';

const title = 'Your session is too large for this site';
const advice =
  'Sign-in succeeded, but the session is too large to keep in browser cookies (too many groups ' +
  'or claims). The operator of this site can fix this by setting session.store: server for ' +
  'this application, which keeps the session on the server and only a short ticket in the ' +
  'browser.';

/**
 * A 431 with a page a person can read (JSON for anything but a browser navigation) that tells
 * the operator to use `session.store: server`, logged once with the request id. `setCookie`
 * carries expiry lines (the used login state, or the session that outgrew its cookies).
 */
export function sessionTooLarge(
  context: StepContext,
  error: SessionTooLargeError,
  logger: Logger,
  setCookie: readonly string[],
): Verdict {
  const { request, app } = context;
  logger.warn(
    {
      requestId: request.id,
      app: app.name,
      code: error.code,
      sealedLength: error.sealedLength,
      limit: error.limit,
    },
    'session too large for the cookie store; set session.store: server for this app',
  );
  const headers: HeaderPair[] = [['cache-control', 'no-store'], ...setCookies(setCookie)];
  if (isBrowserNavigation(request)) {
    return htmlPage('session_too_large', error.status, title, advice, headers);
  }
  return jsonReply('session_too_large', error.status, 'session_too_large', advice, headers);
}
