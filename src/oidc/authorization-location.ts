/** The authorization URL as a string, built from a prefix kept per redirect URI: per login, only the fresh values are appended. */

/** The values of one login; `state`, `nonce` and `codeChallenge` are base64url as we make them. */
export interface PerLoginValues {
  readonly redirectUri: string;
  readonly state: string;
  readonly nonce: string;
  /** `BASE64URL(SHA256(code_verifier))`. */
  readonly codeChallenge: string;
}

/**
 * Values the `application/x-www-form-urlencoded` serializer (WHATWG URL §5.2), which writes the
 * query, leaves as they are: ASCII alphanumerics and `*-._`. Base64url is. (A regular
 * expression: several times faster here than a loop over the characters.)
 */
const formSafe = /^[A-Za-z0-9*._-]*$/;

/** What the full URL ends with when built with the per-login values left empty. */
const emptyTail = 'state=&nonce=&code_challenge=&code_challenge_method=S256';

/**
 * Builds `build(values).href` without a `URL` and a `URLSearchParams` per login. The URL is
 * built once per redirect URI with the per-login values empty; everything up to them (endpoint,
 * configured extras, `client_id`, `response_type`, `redirect_uri`, `scope`, all encoded by
 * the real serializer) is kept, and each login appends its values, which need no encoding.
 * Whenever the result would not be the same string (values needing encoding, a URL that does
 * not end with these parameters), it is built the slow way instead.
 */
export class AuthorizationLocations {
  readonly #build: (values: PerLoginValues) => URL;
  /** Prefix by redirect URI; `false` where only the slow way gives the same URL. */
  readonly #prefixes = new Map<string, string | false>();
  readonly #maxRedirectUris: number;

  /**
   * @param build - the authorization URL with these values, in the parameter order
   *   `…, state, nonce, code_challenge, code_challenge_method` last.
   * @param maxRedirectUris - prefixes kept (one per origin the app serves); all are dropped
   *   when more are needed.
   */
  constructor(build: (values: PerLoginValues) => URL, maxRedirectUris = 64) {
    this.#build = build;
    this.#maxRedirectUris = maxRedirectUris;
  }

  /** The authorization URL for these values, as `build(values).href` would spell it. */
  location(values: PerLoginValues): string {
    if (!formSafe.test(values.state) || !formSafe.test(values.nonce)) return this.#slow(values);
    if (!formSafe.test(values.codeChallenge)) return this.#slow(values);
    let prefix = this.#prefixes.get(values.redirectUri);
    if (prefix === undefined) {
      prefix = this.#prefixFor(values.redirectUri);
      if (this.#prefixes.size >= this.#maxRedirectUris) this.#prefixes.clear();
      this.#prefixes.set(values.redirectUri, prefix);
    }
    if (prefix === false) return this.#slow(values);
    return `${prefix}state=${values.state}&nonce=${values.nonce}&code_challenge=${values.codeChallenge}&code_challenge_method=S256`;
  }

  #slow(values: PerLoginValues): string {
    return this.#build(values).href;
  }

  #prefixFor(redirectUri: string): string | false {
    const href = this.#build({ redirectUri, state: '', nonce: '', codeChallenge: '' }).href;
    if (!href.endsWith(emptyTail)) return false;
    const prefix = href.slice(0, href.length - emptyTail.length);
    return prefix.endsWith('&') || prefix.endsWith('?') ? prefix : false;
  }
}
