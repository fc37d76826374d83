/**
 * Which apps' session cookies meet in one browser. Two apps whose cookies reach the same host
 * under the same name overwrite each other: each refuses the other's (sessions are bound to
 * their app), so a user bounces between two logins. `check-config` and `serve` refuse that.
 */
import { formatPath } from './config-path.ts';
import { defaultCookieName, LEGACY_COOKIE_NAME, type AppConfig } from './schema.ts';
import type { ConfigProblem } from '../errors.ts';

/** A domain and everything under it, as a `Domain` cookie or a `*.domain` match reaches. */
interface DomainReach {
  readonly domain: string;
  /** Whether the domain itself is reached too (a `Domain` cookie), not only its subdomains. */
  readonly itself: boolean;
}

/** The hosts a browser sends an app's session cookies to. */
interface CookieReach {
  /** Every host: the app matches any host and sets host-only cookies. */
  readonly anyHost: boolean;
  /** Host-only cookies on these hosts. */
  readonly hosts: readonly string[];
  readonly domains: readonly DomainReach[];
}

/**
 * Where an app's cookies go. Cookies are always `Path=/` (SPEC §9), so paths never keep two
 * apps' cookies apart: only hosts do. A `session.domain` cookie reaches that domain and every
 * subdomain, whatever `match.hosts` says; host-only cookies reach each matched host, and a
 * `*.example.com` match any host under `example.com`.
 */
function cookieReachOf(app: Pick<AppConfig, 'match' | 'session'>): CookieReach {
  const domain = app.session.domain?.toLowerCase().replace(/^\./, '');
  if (domain !== undefined) {
    return { anyHost: false, hosts: [], domains: [{ domain, itself: true }] };
  }
  const hosts = app.match.hosts.map((host) => host.toLowerCase());
  return {
    anyHost: hosts.length === 0,
    hosts: hosts.filter((host) => !host.startsWith('*.')),
    domains: hosts
      .filter((host) => host.startsWith('*.'))
      .map((host) => ({ domain: host.slice(2), itself: false })),
  };
}

function under(host: string, domain: string): boolean {
  return host.endsWith(`.${domain}`);
}

function hostInDomain(host: string, reach: DomainReach): boolean {
  return (reach.itself && host === reach.domain) || under(host, reach.domain);
}

function domainsMeet(a: DomainReach, b: DomainReach): boolean {
  return a.domain === b.domain || under(a.domain, b.domain) || under(b.domain, a.domain);
}

/**
 * A host both reaches send cookies to (`*.` for a whole domain, `any host`), or `undefined`
 * when they never meet.
 */
function sharedHost(a: CookieReach, b: CookieReach): string | undefined {
  if (a.anyHost || b.anyHost) return 'any host';
  for (const host of a.hosts) {
    if (b.hosts.includes(host) || b.domains.some((d) => hostInDomain(host, d))) return host;
  }
  for (const host of b.hosts) if (a.domains.some((d) => hostInDomain(host, d))) return host;
  for (const x of a.domains) {
    for (const y of b.domains) {
      if (!domainsMeet(x, y)) continue;
      const inner = under(x.domain, y.domain) ? x : y;
      return `${inner.itself ? '' : '*.'}${inner.domain}`;
    }
  }
  return undefined;
}

/**
 * Whether two cookie names meet in a browser: the same, or one is a chunk (`name.0`) or a
 * login-state cookie (`name_login_…`) of the other.
 */
export function cookieNamesCollide(a: string, b: string): boolean {
  const within = (name: string, base: string) =>
    name.startsWith(`${base}.`) || name.startsWith(`${base}_login_`);
  return a === b || within(a, b) || within(b, a);
}

/**
 * One problem per app whose session cookie shares its name and a host with an earlier app's,
 * at `apps[i].session.cookieName`. Apps that failed validation are `undefined` and skipped.
 */
export function checkCookieScopes(apps: readonly (AppConfig | undefined)[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  // An API-only app sets no cookie, so it meets nobody's.
  const reaches = apps.map((app) =>
    app === undefined || !app.browserLogin ? undefined : cookieReachOf(app),
  );
  apps.forEach((app, i) => {
    const reach = reaches[i];
    if (app === undefined || reach === undefined) return;
    for (let j = 0; j < i; j++) {
      const other = apps[j];
      const otherReach = reaches[j];
      // Two apps of one name are reported as such, once (cross-field-rules).
      if (other === undefined || otherReach === undefined || other.name === app.name) continue;
      if (!cookieNamesCollide(app.session.cookieName, other.session.cookieName)) continue;
      const host = sharedHost(reach, otherReach);
      if (host === undefined) continue;
      problems.push({
        path: formatPath(['apps', i, 'session', 'cookieName']),
        message:
          `"${app.session.cookieName}" meets apps[${j}].session.cookieName ` +
          `("${other.session.cookieName}") on ${host}: the browser keeps one cookie for both ` +
          `apps and each refuses the other's session; give each app its own name ` +
          `(leave it unset for ${defaultCookieName(app.name)})`,
      });
      break;
    }
  });
  return problems;
}

/** What {@link legacyCookieNameFor} reads of an app. */
interface NamedCookie {
  readonly name: string;
  readonly session: { readonly cookieName: string };
}

/**
 * The legacy cookie name `app` expires on sight: {@link LEGACY_COOKIE_NAME} when the app is on
 * its default name and no app in the config still uses the legacy name (whose cookies must then
 * be left alone); `undefined` otherwise.
 */
export function legacyCookieNameFor(
  apps: readonly NamedCookie[],
  app: NamedCookie,
): string | undefined {
  if (app.session.cookieName !== defaultCookieName(app.name)) return undefined;
  const inUse = apps.some((other) =>
    cookieNamesCollide(other.session.cookieName, LEGACY_COOKIE_NAME),
  );
  return inUse ? undefined : LEGACY_COOKIE_NAME;
}
