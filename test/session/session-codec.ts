/** The session codec cookie sessions would build, made by the test so it can count decryptions. */
import { createCookieCodec, type CookieCodec } from '../../src/session/cookie-codec.ts';
import { deriveKeyRing } from '../../src/session/session-keys.ts';
import type { SessionOptions } from '../../src/session/sessions.ts';

/** Pass it as `codec` to `CookieSessions`; `stats.decrypts` counts what reached the cipher. */
export function sessionCodec(options: Pick<SessionOptions, 'secrets' | 'binding'>): CookieCodec {
  return createCookieCodec(deriveKeyRing(options.secrets, 'session', options.binding));
}
