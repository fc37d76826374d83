/** Which apps share one OpenID Provider: the same issuer URL, compared as parsed. */

/**
 * The issuer as a provider key: parsed and serialised, so `HTTPS://IdP.example.com:443/realm`
 * and `https://idp.example.com/realm` are one provider. Paths are kept as written (a trailing
 * slash names another issuer, OpenID Connect Discovery §4.3).
 */
export function issuerKey(issuer: string): string {
  return URL.parse(issuer)?.href ?? issuer;
}
