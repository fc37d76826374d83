/** RP-initiated logout (SPEC §4.6): the local session always ends, even while the provider is down. */
import type { Logger } from '../observability/logger.ts';
import { secureFor, setCookies } from './login.ts';
import type { StepContext } from './pipeline.ts';
import { originOf } from './request-urls.ts';
import { redirect, type Verdict } from './verdict.ts';

/**
 * Ends the session (store record, cookies, and a revocation mark so a copied cookie is refused),
 * optionally revokes the refresh token (RFC 7009, best effort, not awaited), and sends the
 * browser to the provider's end-session endpoint with `id_token_hint`, `client_id` and
 * `post_logout_redirect_uri` — or straight to `postLogoutRedirectUri` when the provider has
 * no such endpoint or cannot be reached.
 */
export function createLogoutStep(logger: Logger) {
  async function logout(context: StepContext): Promise<Verdict> {
    const { request, app } = context;
    const secure = secureFor(context);
    const loaded = await app.sessions.load(request.cookies, secure);
    const session = loaded.kind === 'valid' ? loaded.session : undefined;
    const expired = await app.sessions.end(request.cookies, secure);
    if (session !== undefined) await app.revocations.endSession(session);

    const refreshToken = session?.tokens.refreshToken;
    if (app.config.oidc.revokeOnLogout && refreshToken !== undefined) {
      app.oidc.revoke(refreshToken, 'refresh_token').catch((error: unknown) => {
        logger.warn({ app: app.name, err: error }, 'token revocation at logout failed');
      });
    }

    // Sent to the provider only when configured: it must be registered there.
    const postLogout = app.config.oidc.postLogoutRedirectUri;
    let target = postLogout ?? `${originOf(request)}/`;
    try {
      const endSession = app.oidc.endSessionUrl({
        ...(session?.tokens.idToken === undefined ? {} : { idTokenHint: session.tokens.idToken }),
        ...(postLogout === undefined ? {} : { postLogoutRedirectUri: postLogout }),
      });
      if (endSession !== null) target = endSession.href;
    } catch {
      // Discovery has not answered: the local logout still stands.
    }
    return redirect('logout', target, [['cache-control', 'no-store'], ...setCookies(expired)]);
  }

  return function handleLogout(context: StepContext): Promise<Verdict> | undefined {
    if (!context.app.endpoints.is('logout', context.path)) return undefined;
    return logout(context);
  };
}
