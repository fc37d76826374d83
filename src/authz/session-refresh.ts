/** Keeps a session's tokens fresh (SPEC §5): one grant per refresh token in this process. */
import { createHash } from 'node:crypto';
import { AuthzError } from '../errors.ts';
import type { OidcClient, RefreshResult } from '../oidc/oidc-client.ts';
import type { Session, SessionTokens } from '../session/session.ts';

export type RefreshOutcome =
  | {
      readonly kind: 'refreshed';
      readonly tokens: SessionTokens;
      readonly claims?: Readonly<Record<string, unknown>>;
    }
  /** The provider refused the grant (`invalid_grant`): the session is over. */
  | { readonly kind: 'ended' }
  /** The provider could not be reached; the caller decides on the old token's validity. */
  | { readonly kind: 'unavailable'; readonly error: AuthzError };

/**
 * Coalesces refreshes in this process: followers of a refresh already in flight for the same
 * refresh token share its result. A slot is cleared only by the promise that filled it, so a
 * late finisher can never clear a newer refresh's slot.
 */
export class Refresher {
  readonly #inFlight = new Map<string, Promise<RefreshOutcome>>();

  /** True when the access token has less than `skew` ms left. */
  static isDue(session: Session, now: number, skew: number): boolean {
    return session.tokens.expiresAt - now <= skew;
  }

  refresh(oidc: OidcClient, session: Session): Promise<RefreshOutcome> {
    const refreshToken = session.tokens.refreshToken;
    if (refreshToken === undefined) return Promise.resolve({ kind: 'ended' });
    const key = createHash('sha256').update(refreshToken).digest('base64url');
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running;
    const promise = this.#grant(oidc, session, refreshToken).finally(() => {
      if (this.#inFlight.get(key) === promise) this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, promise);
    return promise;
  }

  async #grant(oidc: OidcClient, session: Session, refreshToken: string): Promise<RefreshOutcome> {
    let result: RefreshResult;
    try {
      result = await oidc.refresh(refreshToken, { expectedSubject: session.sub });
    } catch (error) {
      if (error instanceof AuthzError && error.code === 'IDP_UNAVAILABLE')
        return { kind: 'unavailable', error };
      if (error instanceof AuthzError) return { kind: 'ended' };
      throw error;
    }
    const tokens: SessionTokens = {
      accessToken: result.tokens.accessToken,
      // Without expires_in or a new ID token, keep the old deadline rather than invent one.
      expiresAt: result.tokens.expiresAt ?? session.tokens.expiresAt,
      ...((result.tokens.refreshToken ?? refreshToken)
        ? { refreshToken: result.tokens.refreshToken ?? refreshToken }
        : {}),
      ...((result.tokens.idToken ?? session.tokens.idToken)
        ? { idToken: (result.tokens.idToken ?? session.tokens.idToken)! }
        : {}),
    };
    return result.claims === undefined
      ? { kind: 'refreshed', tokens }
      : { kind: 'refreshed', tokens, claims: result.claims };
  }
}
