/** RP-initiated logout (SPEC §4.6): the local session always ends, even while the provider is down; never at another site's request. */
import { secureFor } from './login.ts';
import { startLogoutState } from './logout-return.ts';
import { escapeHtml, htmlReply } from './pages.ts';
import type { Step, StepContext, StepDeps } from './pipeline.ts';
import { requestSite } from './request-site.ts';
import { originOf } from './request-urls.ts';
import { redirect, setCookies, type Verdict } from './verdict.ts';

/**
 * What a logout the browser marks as coming from another origin gets instead of a logout: a
 * page whose button POSTs back to the logout path from this origin. 403, not 200: in Envoy's
 * HTTP mode only a 200 allows, and the page must be shown, not the request forwarded. The page
 * may not be framed (clickjacking the button) and carries no script.
 */
function confirmationPage(logoutPath: string): Verdict {
  const content = `
<p>Another site sent you here to sign you out. Sign out only if you meant to.</p>
<form method="post" action="${escapeHtml(logoutPath)}"><button type="submit">Sign out</button></form>
<p><a href="/">Stay signed in</a></p>`;
  return htmlReply(
    'logout',
    403,
    'Sign out?',
    content,
    [],
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
}

/**
 * Ends the session (store record, cookies, and a revocation mark so a copied cookie is refused),
 * optionally revokes the refresh token (RFC 7009, best effort, not awaited), and sends the
 * browser to the provider's end-session endpoint with `id_token_hint`, `client_id`,
 * `post_logout_redirect_uri` and a `state` kept in a cookie (checked on the way back, see
 * `logout-return.ts`) — or straight to `postLogoutRedirectUri` when the provider has no such
 * endpoint or cannot be reached.
 */
export function createLogoutStep({ logger }: StepDeps): Step {
  async function logout(context: StepContext): Promise<Verdict> {
    const { request, app } = context;
    const secure = secureFor(context);
    const loaded = await app.sessions.load(request.cookies, secure);
    const session = loaded.kind === 'valid' ? loaded.session : undefined;
    const expired = await app.sessions.end(request.cookies, secure);
    if (session !== undefined) await app.revocations.endSession(session);
    logger.info(
      {
        requestId: request.id,
        app: app.name,
        ...(session === undefined
          ? { session: loaded.kind }
          : { sub: app.subjectLabel(session.sub) }),
      },
      'signed out',
    );

    const refreshToken = session?.tokens.refreshToken;
    if (app.config.oidc.revokeOnLogout && refreshToken !== undefined) {
      app.oidc.revoke(refreshToken, 'refresh_token').catch((error: unknown) => {
        logger.warn(
          { requestId: request.id, app: app.name, err: error },
          'token revocation at logout failed',
        );
      });
    }

    // Sent to the provider only when configured: it must be registered there.
    const postLogout = app.config.oidc.postLogoutRedirectUri;
    let target = postLogout ?? `${originOf(request)}/`;
    const cookies = [...expired];
    try {
      // `state` only travels with a post-logout URI: it is what the provider sends back there.
      const returning = postLogout === undefined ? undefined : startLogoutState(app, secure);
      const endSession = app.oidc.endSessionUrl({
        ...(session?.tokens.idToken === undefined ? {} : { idTokenHint: session.tokens.idToken }),
        ...(postLogout === undefined ? {} : { postLogoutRedirectUri: postLogout }),
        ...(returning === undefined ? {} : { state: returning.state }),
      });
      if (endSession !== null) {
        target = endSession.href;
        if (returning !== undefined) cookies.push(returning.setCookie);
      }
    } catch {
      // Discovery has not answered: the local logout still stands.
    }
    return redirect('logout', target, [['cache-control', 'no-store'], ...setCookies(cookies)]);
  }

  /**
   * A logout is a state change a page on another site could trigger with a link or an
   * auto-submitted form (login CSRF's twin). It runs when the browser says the request comes
   * from this origin (`Sec-Fetch-Site: same-origin` or `none`, else a matching `Origin`), and
   * when the request carries neither header (browsers before Fetch Metadata, curl), as before.
   * Any method is accepted, so a plain link and the confirmation page's POST both work.
   */
  return function handleLogout(context: StepContext): Verdict | Promise<Verdict> | undefined {
    if (!context.app.endpoints.is('logout', context.path)) return undefined;
    if (requestSite(context.request) === 'cross-origin') {
      logger.info(
        { app: context.app.name, requestId: context.request.id, method: context.request.method },
        'cross-site logout not executed; confirmation page sent',
      );
      return confirmationPage(context.app.config.oidc.logoutPath);
    }
    return logout(context);
  };
}
