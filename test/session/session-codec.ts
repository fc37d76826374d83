/** Session codecs made by the test, so it can count the decryptions that reach the cipher. */
import type { KeyObject } from 'node:crypto';
import { createCookieCodec, type CookieCodec } from '../../src/session/cookie-codec.ts';
import { deriveKeyRing, SecretKey, type KeyRing } from '../../src/session/session-keys.ts';
import type { SessionOptions } from '../../src/session/sessions.ts';

/** A codec with a count of the decryptions it ran. */
export type CountingCodec = CookieCodec & { readonly decrypts: () => number };

/**
 * A codec over `ring` whose keys count each use of their material: the codec takes the current
 * key's once when built, then a key's once per decryption, so a value refused on shape or by
 * an unknown `kid` is not counted.
 */
export function countingCodec(ring: KeyRing): CountingCodec {
  let uses = 0;
  class CountedKey extends SecretKey {
    override keyObject(): KeyObject {
      uses++;
      return super.keyObject();
    }
  }
  const all = ring.all.map((key) => new CountedKey(key.kid, key.keyObject()));
  const byKid = new Map(all.map((key) => [key.kid, key]));
  const codec = createCookieCodec({ current: all[0]!, all, byKid: (kid) => byKid.get(kid) });
  uses = 0;
  return { ...codec, decrypts: () => uses };
}

/** The session codec cookie sessions would build; pass it as `codec` to `CookieSessions`. */
export function sessionCodec(options: Pick<SessionOptions, 'secrets' | 'binding'>): CountingCodec {
  return countingCodec(deriveKeyRing(options.secrets, 'session', options.binding));
}
