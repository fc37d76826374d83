/** What the session tests share: base options, a login, a browser's first cookies, a clock. */
import type { NewSession } from '../../src/session/session.ts';
import type { SessionOptions, Sessions } from '../../src/session/sessions.ts';
import { applySetCookie } from './browser-cookies.ts';
import { testBinding } from './test-binding.ts';

export const SECRET = 'primary-session-secret-at-least-32-bytes';
export const MINUTE = 60_000;

/** An app's session settings with the defaults a test changes one at a time. */
export const baseOptions: SessionOptions = {
  secrets: [SECRET],
  cookieName: '_eoa',
  binding: testBinding,
  maxAge: 24 * 60 * MINUTE,
  sameSite: 'lax',
  maxPendingLogins: 5,
  loginTimeout: 10 * MINUTE,
};

/** Alice's login, as the callback hands it to `create`. */
export const login: NewSession = {
  sub: 'alice',
  sid: 'idp-session-1',
  claims: { sub: 'alice', email: 'alice@example.com', email_verified: true, groups: ['admins'] },
  tokens: {
    accessToken: 'access-1',
    refreshToken: 'refresh-1',
    idToken: 'id-1',
    expiresAt: 1_700_000_300_000,
  },
};

/** A browser's cookies right after logging in through `m`. */
export async function loggedInAt(m: Pick<Sessions, 'create'>): Promise<Map<string, string>> {
  return applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
}

/** A clock the test moves by hand. */
export function clock() {
  let t = 1_700_000_000_000;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}
