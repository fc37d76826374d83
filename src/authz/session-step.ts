/** The session path (SPEC §4.8): a valid session, refreshed when due, authorized, let through. */
import { headersToScrub } from './app-runtime.ts';
import { secureFor } from './login.ts';
import type { StepContext } from './pipeline.ts';
import { RefreshCoordinator } from '../oidc/refresh-coordinator.ts';
import { allow, deny, type HeaderPair, type Verdict } from './verdict.ts';

/** Decides for a request without a usable session (login, or 401); set by the composition. */
export type Unauthenticated = (
  context: StepContext,
  setCookie: readonly string[],
) => Promise<Verdict> | Verdict;

export interface SessionStepDeps {
  readonly now: () => number;
  readonly unauthenticated: Unauthenticated;
}

/** The `cookie` header without the named cookies; `undefined` when nothing is left. */
export function cookieHeaderWithout(
  header: string,
  names: ReadonlySet<string>,
): string | undefined {
  const kept = header
    .split(';')
    .map((pair) => pair.trim())
    .filter(
      (pair) => pair !== '' && !names.has(pair.slice(0, Math.max(0, pair.indexOf('='))).trim()),
    );
  return kept.length === 0 ? undefined : kept.join('; ');
}

export function createSessionStep(deps: SessionStepDeps) {
  return async function allowSession(context: StepContext): Promise<Verdict | undefined> {
    const { request, app } = context;
    const secure = secureFor(context);
    // The decoded-session cache keeps the ID token only for an app that sends it upstream.
    const readsIdToken = app.headers.readsIdToken;
    const loaded = await app.sessions.load(request.cookies, secure, {
      cacheIdToken: readsIdToken,
    });
    if (loaded.kind === 'none') return undefined;
    if (loaded.kind !== 'valid') return deps.unauthenticated(context, loaded.setCookie);

    let { session } = loaded;
    let setCookie = loaded.setCookie;
    const now = deps.now();
    if (RefreshCoordinator.isDue(session, now, app.config.refresh.skew)) {
      const outcome = await app.refresher.refresh(session);
      switch (outcome.kind) {
        case 'refreshed': {
          const written = await app.sessions.update(
            loaded,
            outcome.claims === undefined
              ? { tokens: outcome.tokens }
              : { tokens: outcome.tokens, claims: { ...session.claims, ...outcome.claims } },
            request.cookies,
            secure,
          );
          session = written.session;
          setCookie = written.setCookie;
          break;
        }
        case 'ended':
          // Nothing to refresh with, but the token still works: serve until it expires.
          if (session.tokens.refreshToken === undefined && session.tokens.expiresAt > now) break;
          return deps.unauthenticated(context, await app.sessions.end(request.cookies, secure));
        case 'unavailable':
          // The old access token still works: keep serving; else the caller retries later.
          if (session.tokens.expiresAt <= now) {
            return deny('unavailable', 503, 'identity provider unavailable, retry shortly', [
              ['retry-after', String(outcome.retryAfterSeconds)],
            ]);
          }
      }
    }

    const refusal = app.rules.check(session.claims, request);
    if (refusal !== undefined) {
      return deny('forbidden', 403, `${refusal}\n`, [
        ['content-type', 'text/plain; charset=utf-8'],
      ]);
    }

    const rendered = app.headers.render({
      claims: session.claims,
      accessToken: session.tokens.accessToken,
      idToken: readsIdToken ? session.tokens.idToken : undefined,
    });
    const upstreamHeaders: HeaderPair[] = rendered;
    const setNames = new Set(rendered.map(([name]) => name));
    const removeHeaders = [...headersToScrub(app, request.headers, setNames)];
    const cookieHeader = request.headers.get('cookie');
    if (cookieHeader !== undefined) {
      // `cookieNames` already lists the login-state cookies beside the session's own.
      const rest = cookieHeaderWithout(cookieHeader, new Set(loaded.cookieNames));
      if (rest === undefined) removeHeaders.push('cookie');
      else upstreamHeaders.push(['cookie', rest]);
    }
    return allow('session', {
      upstreamHeaders,
      removeHeaders,
      responseHeaders: setCookie.map((line) => ['set-cookie', line] as const),
    });
  };
}
