/**
 * The `state` of an RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2, §3): made at
 * logout, kept in a short-lived cookie, checked when the provider sends the browser back.
 */
import { randomBytes } from 'node:crypto';
import { statesEqual } from '../session/login-state.ts';
import { cookieAttributes, expireCookie, prefixedName } from '../session/cookie-jar.ts';
import type { CookieScope } from '../session/cookie-jar.ts';
import type { AppRuntime } from './app-runtime.ts';
import { secureFor } from './login.ts';
import { htmlPage } from './pages.ts';
import type { Step, StepContext, StepDeps } from './pipeline.ts';
import { originOf } from './request-urls.ts';
import { redirect, setCookies, type Verdict } from './verdict.ts';

/** How long a logout may take at the provider before its return is no longer recognised, s. */
export const LOGOUT_STATE_TTL_SECONDS = 600;

/**
 * The cookie's scope: `Lax` whatever the session's `sameSite`, because the return is a
 * top-level navigation from the provider's site, which a `Strict` cookie would not reach.
 */
function scopeOf(app: AppRuntime): CookieScope {
  const { domain } = app.config.session;
  return domain === undefined ? { sameSite: 'lax' } : { sameSite: 'lax', domain };
}

function cookieNameOf(app: AppRuntime, secure: boolean): string {
  return prefixedName(`${app.config.session.cookieName}_logout`, secure, scopeOf(app));
}

/**
 * A fresh logout `state` and the `set-cookie` line that keeps it. Base64url only: some providers
 * (Glewlwyd) copy `state` into the return URL without encoding it again.
 */
export function startLogoutState(
  app: AppRuntime,
  secure: boolean,
): { state: string; setCookie: string } {
  const state = randomBytes(24).toString('base64url');
  const attributes = cookieAttributes(LOGOUT_STATE_TTL_SECONDS, secure, scopeOf(app));
  return { state, setCookie: `${cookieNameOf(app, secure)}=${state}${attributes}` };
}

interface ReturnSettings {
  readonly target: { readonly origin: string; readonly path: string };
  readonly secureName: string;
  readonly plainName: string;
}

/** The post-logout URI's origin and path, when the app has one. */
function returnTargetOf(app: AppRuntime): { origin: string; path: string } | undefined {
  const configured = app.config.oidc.postLogoutRedirectUri;
  const url = configured === undefined ? null : URL.parse(configured);
  return url === null ? undefined : { origin: url.origin, path: url.pathname };
}

/**
 * The return from the provider's logout: a request to the post-logout URI from a browser holding
 * the logout cookie. A `state` equal to the cookie's gets a redirect to the same URI without it
 * (the app never sees our parameter); anything else a page that says the logout could not be
 * confirmed. Either way the cookie is expired: it is good for one return. Without the cookie the
 * request is none of ours and goes on. It runs before public paths, where a post-logout page
 * usually is.
 */
export function createLogoutReturnStep({ logger }: StepDeps): Step {
  /** Per app, built on its first request: this step sees every request that has cookies. */
  const settings = new WeakMap<AppRuntime, ReturnSettings | null>();
  const settingsOf = (app: AppRuntime): ReturnSettings | null => {
    let found = settings.get(app);
    if (found === undefined) {
      const target = returnTargetOf(app);
      found =
        target === undefined
          ? null
          : { target, secureName: cookieNameOf(app, true), plainName: cookieNameOf(app, false) };
      settings.set(app, found);
    }
    return found;
  };

  return function handleLogoutReturn(context: StepContext): Verdict | undefined {
    const { request, app } = context;
    if (request.cookies.size === 0) return undefined;
    const found = settingsOf(app);
    if (found === null) return undefined;
    const secure = secureFor(context);
    const name = secure ? found.secureName : found.plainName;
    const expected = request.cookies.get(name);
    if (expected === undefined) return undefined;
    const { target } = found;
    if (request.path !== target.path || originOf(request) !== target.origin) return undefined;
    const expire = setCookies([expireCookie(name, secure, scopeOf(app))]);
    const query = new URLSearchParams(request.query);
    const state = query.get('state');
    if (state === null || expected === '' || !statesEqual(state, expected)) {
      logger.info(
        {
          requestId: request.id,
          app: app.name,
          reason: state === null ? 'no state' : 'state is not this browser’s',
        },
        'logout return not confirmed',
      );
      return htmlPage(
        'logout',
        400,
        'Sign-out not confirmed',
        'This page was not reached from the sign-out you started. You are signed out here.',
        expire,
      );
    }
    query.delete('state');
    const rest = query.toString();
    return redirect('logout', `${target.origin}${target.path}${rest === '' ? '' : `?${rest}`}`, [
      ['cache-control', 'no-store'],
      ...expire,
    ]);
  };
}
