/** Server-provided DPoP nonces (RFC 9449 §9), stateless: every replica sharing the secret issues and accepts the same ones. */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** Domain separation: this key is used for nothing but DPoP nonces. */
const NONCE_INFO = 'envoy-oidc-authz dpop nonce v1';
/** Characters of the MAC kept: 128 bits. */
const macLength = 22;

/**
 * Nonces of one app: `<window>.<mac>`, where `window` is the number of `lifetimeMs` periods since
 * the epoch (base 36) and `mac` an HMAC-SHA256 of the app and window under a key derived (HKDF)
 * from `secret` (the app's first session secret). A nonce is accepted during its window and the
 * next, so one issued just before a window ends still serves a full `lifetimeMs`. Nothing is
 * stored: a replica that shares the secret accepts a nonce another one issued.
 */
export class DpopNonces {
  readonly #key: Buffer;
  readonly #app: string;
  readonly #lifetimeMs: number;
  readonly #now: () => number;
  #window = -1;
  #current = '';

  constructor(secret: string, app: string, lifetimeMs: number, now: () => number) {
    this.#key = Buffer.from(hkdfSync('sha256', secret, '', NONCE_INFO, 32));
    this.#app = app;
    this.#lifetimeMs = lifetimeMs;
    this.#now = now;
  }

  /** The nonce to hand out now; computed once per window. */
  current(): string {
    const window = Math.floor(this.#now() / this.#lifetimeMs);
    if (window !== this.#window) {
      this.#current = `${window.toString(36)}.${this.#mac(window)}`;
      this.#window = window;
    }
    return this.#current;
  }

  /** True when `nonce` was issued for this app in the current window or the one before. */
  accepts(nonce: string): boolean {
    const dot = nonce.indexOf('.');
    if (dot < 1 || dot > 12) return false;
    const encoded = nonce.slice(0, dot);
    if (!/^[0-9a-z]+$/.test(encoded)) return false;
    const window = parseInt(encoded, 36);
    const now = Math.floor(this.#now() / this.#lifetimeMs);
    if (window !== now && window !== now - 1) return false;
    const given = Buffer.from(nonce.slice(dot + 1));
    const expected = Buffer.from(this.#mac(window));
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  #mac(window: number): string {
    return createHmac('sha256', this.#key)
      .update(`${this.#app}\n${window}`)
      .digest('base64url')
      .slice(0, macLength);
  }
}
