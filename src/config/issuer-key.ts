/** Which apps share one OpenID Provider: the same issuer URL, compared as parsed. */

/**
 * The issuer as a provider key: parsed and serialised, so `HTTPS://IdP.example.com:443/realm`
 * and `https://idp.example.com/realm` are one provider. Paths are kept as written (a trailing
 * slash names another issuer, OpenID Connect Discovery §4.3).
 */
export function issuerKey(issuer: string): string {
  return URL.parse(issuer)?.href ?? issuer;
}

const discoverySuffix = '/.well-known/openid-configuration';

/**
 * The issuer a discovery document URL stands for, when `url` is one rather than an issuer:
 * `https://idp.example.com/realm/.well-known/openid-configuration` (OpenID Connect Discovery
 * §4) or `https://idp.example.com/.well-known/openid-configuration/realm` (RFC 8414 §3) both
 * name `https://idp.example.com/realm`. `undefined` for anything else, including unparseable
 * text; `null` for a `/.well-known/` path that names no issuer we can tell.
 */
export function issuerOfDiscoveryUrl(url: string): string | null | undefined {
  const parsed = URL.parse(url);
  if (parsed === null || !parsed.pathname.includes('/.well-known/')) return undefined;
  const path = parsed.pathname;
  if (path.endsWith(discoverySuffix)) {
    return parsed.origin + path.slice(0, -discoverySuffix.length);
  }
  if (path.startsWith(`${discoverySuffix}/`)) {
    return parsed.origin + path.slice(discoverySuffix.length);
  }
  return null;
}
