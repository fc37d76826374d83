/** The configuration schema: every key, its validation, its default and its documentation. */

import { z } from 'zod';

import { DURATION_HINT, parseDuration } from './duration.ts';
import {
  GENERATE_SECRET_COMMAND,
  issuedSecretProblem,
  sessionSecretProblem,
  type IssuedSecretKind,
} from './secret-strength.ts';
import { compileTemplate } from './template.ts';
import { pageTemplateName, templateProblem } from './page-templates.ts';
import { addressNames, claimAddressProblem } from './claim-address.ts';
import {
  maxIdentityNameSeparators,
  maxIdentityRemovalBytes,
  removalListBytes,
} from '../header-value.ts';
import { issuerOfDiscoveryUrl } from './issuer-key.ts';
import { ASSERTION_ALGS, readSigningKeys } from './signing-keys.ts';
import { parseHostPort } from '../host-port.ts';
import { PROVIDER_PROFILES } from './provider-profiles.ts';
import { isLoopbackHost } from '../loopback-host.ts';

// --- Building blocks ---

/** A duration string (`90s`, `15m`, `24h`, `500ms`, `1h30m`) resolved to milliseconds. */
function duration() {
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: DURATION_HINT });
      return z.NEVER;
    }
    return ms;
  });
}

/** A switch that stays off unless set; the description closes with that default and `offMeans`. */
function offByDefault(description: string, offMeans?: string) {
  const off = offMeans === undefined ? '' : ` (${offMeans})`;
  return z.boolean().default(false).describe(`${description} Default false${off}.`);
}

/** A refinement that reports the problem `problemOf` finds in a value, if it finds one. */
function reportProblem<T>(problemOf: (value: T) => string | undefined) {
  return (value: T, ctx: z.RefinementCtx<T>): void => {
    const problem = problemOf(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  };
}

/** An integer of at least `min`, `fallback` unless set; the description closes with that default. */
function intDefault(min: number, fallback: number, description: string) {
  return z.int().min(min).default(fallback).describe(`${description} Default ${fallback}.`);
}

/** A list that is empty unless set; the description closes with that default. */
function emptyListDefault<T extends z.ZodType>(item: T, description: string) {
  return z.array(item).default([]).describe(`${description} Default [].`);
}

/** A {@link duration} that defaults to `fallback`, its description closing with that default. */
function durationDefault(fallback: string, description: string) {
  return duration()
    .prefault(fallback)
    .describe(`${description} Duration, default \`${fallback}\`.`);
}

const hostPort = z
  .string()
  .refine(
    (text) => parseHostPort(text) !== undefined,
    'must be host:port (e.g. 0.0.0.0:9001, [::]:9001, redis-0:6379)',
  );

/** `text` percent-decoded, or as it is when it is not valid percent-encoding. */
function decodeUriComponentOr(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** An https URL, or http on loopback only (SPEC §14: HTTPS to the IdP except loopback). */
const issuerUrl = z.string().superRefine(
  reportProblem((text) => {
    const url = URL.parse(text);
    if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      return 'must be an https URL';
    }
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      return 'must be an https URL (http is allowed only for 127.0.0.0/8, ::1, localhost and *.localhost)';
    }
    const extra =
      url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '';
    if (extra) return 'must not contain a query, a fragment or credentials';
    // Discovery would read the document, and then every ID token's `iss` would differ from it.
    const issuer = issuerOfDiscoveryUrl(text);
    if (issuer === undefined) return undefined;
    return issuer === null
      ? 'is a /.well-known/ URL, not an issuer: give the `issuer` value of the discovery document'
      : `is the discovery document's URL, not the issuer: set the \`issuer\` value it holds (likely ${issuer})`;
  }),
);

const absoluteUrl = z
  .string()
  .refine((text) => /^https?:$/.test(URL.parse(text)?.protocol ?? ''), 'must be an http(s) URL');

/** A URL path: starts with `/`, no query, fragment or whitespace. */
const urlPath = z.string().regex(/^\/[^\s?#]*$/, 'must be a path starting with / (no query)');

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const httpMethods = z
  .array(
    z
      .string()
      .regex(HTTP_TOKEN, 'must be an HTTP method')
      .transform((method) => method.toUpperCase()),
  )
  .min(1, 'must list at least one method when given');

/** An OAuth scope (RFC 6749 §3.3 `scope-token`). */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a scope token');

/** Which requests a per-path rule (`authorization.paths`, `bearer.paths`) applies to. */
function pathRuleMatch() {
  return {
    prefix: urlPath.describe(
      'Requests whose path starts with this prefix, in any reading of the path (decoded, `;params` stripped, dot segments resolved).',
    ),
    methods: httpMethods
      .optional()
      .describe('Only for these methods; `GET` also covers `HEAD`. Default: all.'),
  };
}

/** A claim address (see the reference's opening notes): the same syntax as after `claims.` in a template. */
const claimAddress = z.string().superRefine(reportProblem(claimAddressProblem));

/** A claim value a rule compares with. */
const claimValue = z.union([z.string(), z.number(), z.boolean()], {
  error: 'must be a string, number or boolean',
});

const MATCHERS = ['equals', 'oneOf', 'contains', 'exists'] as const;

const claimRule = z
  .strictObject({
    claim: claimAddress.describe(
      'Claim to test, by claim address: `email`, `realm_access.roles`, `https://example.com/roles`, `["my claim"]`.',
    ),
    equals: claimValue.optional().describe('The claim equals this value.'),
    oneOf: z.array(claimValue).min(1).optional().describe('The claim equals one of these values.'),
    contains: claimValue
      .optional()
      .describe(
        'The claim is an array containing this value, or a string in which it is one space-separated word (the `scope` format).',
      ),
    exists: z
      .boolean()
      .optional()
      .describe('true: the claim is present (not null); false: it is absent or null.'),
  })
  .refine(
    (rule) => MATCHERS.filter((m) => rule[m] !== undefined).length === 1,
    'must have exactly one of equals, oneOf, contains, exists',
  );

/** The rule fields shared by an app's `authorization` and each of its `paths`. */
function ruleFields() {
  return {
    allowedEmails: emptyListDefault(
      z
        .string()
        .regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address')
        .transform((email) => email.toLowerCase()),
      'Emails allowed in (compared case-insensitively). Empty: any email.',
    ),
    allowedDomains: emptyListDefault(
      z
        .string()
        .regex(
          /^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/,
          'must be a domain like example.com or *.example.com',
        )
        .transform((domain) => domain.toLowerCase()),
      'Email domains allowed in, checked only when `email_verified` is true; `*.example.com` allows its subdomains (not example.com itself). Empty: any.',
    ),
    requireGroups: emptyListDefault(
      z.string().min(1),
      'User must be in any one of these groups (`groupsClaim`). Empty: no check.',
    ),
    requireRoles: emptyListDefault(
      z.string().min(1),
      'User must have any one of these roles (`rolesClaims`). Empty: no check.',
    ),
    claims: emptyListDefault(claimRule, 'Generic claim matchers; all must hold.'),
  };
}

/**
 * An `acr` value (OIDC Core §2): printable ASCII without spaces (`acr_values` separates by space)
 * and without `"` or `\\` (it is quoted in an RFC 9470 challenge).
 */
const acrValue = z
  .string()
  .regex(
    /^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/,
    'must be printable ASCII without spaces, `"` or `\\`',
  );

/** The step-up demands (OIDC Core §3.1.2.1 `acr_values`/`max_age`) of an app and each of its `paths`. */
function stepUpFields() {
  return {
    acrValues: emptyListDefault(
      acrValue,
      "The session's `acr` must be one of these (most preferred first); a session without one is sent to log in again with `acr_values`, an API caller gets 401 `insufficient_user_authentication` (RFC 9470). On a path, in addition to the app's. Empty: no check.",
    ),
    maxAge: duration()
      .refine((ms) => ms >= 1000 && ms % 1000 === 0, 'must be whole seconds, at least 1s')
      .optional()
      .describe(
        "The user must have authenticated (`auth_time`) at most this long ago, allowing `oidc.clockSkew`; else the session is sent to log in again with `max_age`, an API caller gets 401 `insufficient_user_authentication` (RFC 9470). On a path, the shorter of it and the app's wins. Duration in whole seconds. Default: none.",
      ),
  };
}

/** Names that may not be set upstream: they belong to the transport or to the session cookie. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'upgrade',
  'cookie',
]);

/** A lower-case HTTP header name (RFC 9110 §5.1 token). */
const lowerCaseHeaderName = z
  .string()
  .regex(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/, 'must be a lower-case HTTP header name');

const headerName = lowerCaseHeaderName
  .refine((name) => !RESERVED_HEADERS.has(name), 'cannot be set as an identity header')
  .refine(
    (name) => name.replace(/[^_-]/g, '').length <= maxIdentityNameSeparators,
    `must have at most ${maxIdentityNameSeparators} "-" or "_" (HTTP mode lists every spelling for removal)`,
  );

const headerTemplate = z.string().superRefine(
  reportProblem((source) => {
    const compiled = compileTemplate(source);
    return compiled.ok ? undefined : compiled.message;
  }),
);

/** The identity headers every app sends unless it maps them to `''` (SPEC §7). */
export const DEFAULT_UPSTREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-auth-request-user': '{{ claims.sub }}',
  'x-auth-request-email': '{{ claims.email }}',
  'x-auth-request-groups': '{{ claims.groups }}',
  'x-auth-request-preferred-username': '{{ claims.preferred_username }}',
});

/** Authorization-request parameters the login flow owns; `extraAuthParams` may not override them. */
export const RESERVED_AUTH_PARAMS: ReadonlySet<string> = new Set([
  'client_id',
  'redirect_uri',
  'response_type',
  'response_mode',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'request',
  'request_uri',
]);

/** The asymmetric JWS algorithms tokens may be signed with; `none` and every `HS*` never are. */
export const ASYMMETRIC_JWS_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

// --- One app ---

const matchSchema = z
  .strictObject({
    hosts: emptyListDefault(
      z
        .string()
        .regex(
          /^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
          'must be a host name like app.example.com or *.example.com (no port)',
        )
        .transform((host) => host.toLowerCase()),
      'Host names this app serves: exact, or `*.example.com` for any subdomain; the request port is ignored. Empty: any host.',
    ),
    pathPrefix: urlPath
      .default('/')
      .describe(
        'Only requests whose path starts with this prefix match; a prefix ending in `/` also matches the bare segment (`/admin/` matches `/admin`, as upstreams serve it). Default `/`.',
      ),
  })
  .prefault({})
  .describe(
    'How requests find this app: the first app whose `match` fits wins; `context_extensions` `app=<name>` wins over all. Omitted: every request matches. An app that matches every request must be the last app with a `match` of its own.',
  );

/**
 * A secret issued elsewhere (a client secret, a Redis password): any non-empty string except a
 * template value nobody replaced, so a shipped Kubernetes Secret applied as it is fails
 * `check-config`, `serve` and reload instead of failing at the first login or Redis command.
 */
function issuedSecret(kind: IssuedSecretKind, emptyMessage?: string) {
  return z
    .string()
    .min(1, emptyMessage)
    .superRefine(reportProblem((value) => issuedSecretProblem(value, kind)));
}

const oidcSchema = z
  .strictObject({
    provider: z
      .enum(PROVIDER_PROFILES)
      .default('generic')
      .describe(
        'The provider profile: its defaults fill keys this app leaves unset, and it handles the provider’s known departures from the standard (docs/providers.md). Default `generic` (none).',
      ),
    tenants: emptyListDefault(
      z
        .string()
        .regex(
          /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
          'must be a tenant id (a GUID)',
        ),
      'With `provider: entra` and a multi-tenant issuer (`common`, `organizations`): the tenant ids (`tid`) whose users may log in; empty: any tenant.',
    ),
    basicAuthEncoding: z
      .enum(['form', 'raw'])
      .default('form')
      .describe(
        'How `client_secret_basic` encodes the client id and secret: `form` (RFC 6749 §2.3.1, `-` becomes `%2D`, …) or `raw` (as they are, for providers that compare the raw value and refuse a secret with such characters). Default `form`.',
      ),
    issuer: issuerUrl.describe(
      'OpenID Provider issuer URL; discovery is read from `<issuer>/.well-known/openid-configuration`. https, or http on loopback only. Required.',
    ),
    clientId: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe(
        'OAuth client id. Required, except in an API-only app: one with `bearer.enabled` and no `clientId`, which accepts bearer tokens only, never redirects (a request without a token gets 401 with `WWW-Authenticate: Bearer`, a browser too), reads and writes no cookie, answers no callback or logout path, and needs no `clientSecret` or `session.secrets`.',
      ),
    clientSecret: issuedSecret('client secret', 'must not be empty')
      .optional()
      .describe(
        'OAuth client secret; required for `client_secret_basic` and `client_secret_post`. Or `clientSecretFile`: a file holding it (trailing newline removed). A template value left in place (`REPLACE…`, `changeme`, `placeholder`, `<…>`, a literal `${…}`, `...`) is refused.',
      ),
    clientAuth: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'])
      .default('client_secret_basic')
      .describe('Client authentication at the token endpoint. Default `client_secret_basic`.'),
    privateKey: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe(
        'Signing key for `private_key_jwt`: a PEM private key or a private JWK as JSON. Or `privateKeyFile`.',
      ),
    scopes: z
      .array(scopeToken)
      .refine((scopes) => scopes.includes('openid'), 'must include openid')
      .default(['openid', 'profile', 'email', 'offline_access'])
      .describe(
        'Scopes requested at login. Must include `openid`. Default `[openid, profile, email, offline_access]`.',
      ),
    callbackPath: urlPath
      .default('/oauth2/callback')
      .describe('Redirect URI path registered at the IdP. Default `/oauth2/callback`.'),
    logoutPath: urlPath
      .default('/oauth2/logout')
      .describe('Path that ends the session (RP-initiated logout). Default `/oauth2/logout`.'),
    postLogoutRedirectUri: absoluteUrl
      .optional()
      .describe('Where the IdP sends the browser after logout. Default: none.'),
    backchannelLogoutPath: urlPath
      .optional()
      .describe(
        'Path receiving OIDC Back-Channel Logout POSTs (`logout_token`), via Envoy or straight to `listen.http`. Default: off.',
      ),
    frontchannelLogoutPath: urlPath
      .optional()
      .describe('Path receiving OIDC Front-Channel Logout GETs (`iss`, `sid`). Default: off.'),
    extraAuthParams: z
      .record(
        z
          .string()
          .refine(
            (name) => !RESERVED_AUTH_PARAMS.has(name),
            'is set by the login flow and cannot be overridden',
          ),
        z.string(),
      )
      .default({})
      .describe(
        'Extra authorization-request parameters (`prompt`, `acr_values`, `kc_idp_hint`, …). Default {}.',
      ),
    par: z
      .enum(['auto', 'always', 'never'])
      .default('auto')
      .describe(
        "Pushed authorization requests (RFC 9126): the login first POSTs its parameters to the provider's `pushed_authorization_request_endpoint` (authenticated as at the token endpoint) and redirects with only `client_id` and `request_uri`, so the 302 stays short and the parameters never pass through the browser. `auto`: when the provider's discovery says `require_pushed_authorization_requests: true`; `always`: every login (the app is not ready, and `check-config --online` fails, when the provider announces no such endpoint; set it for a client the provider requires it of); `never`: no login (not ready when the provider requires it). The push is a provider call within the login's `request.budget`: a provider that fails it gets 503 with `Retry-After`, one that refuses it (4xx) the login error page. Default `auto`.",
      ),
    claimsFrom: z
      .array(z.enum(['id_token', 'userinfo', 'access_token']))
      .min(1)
      .refine((sources) => new Set(sources).size === sources.length, 'must not repeat a source')
      .default(['id_token', 'access_token'])
      .describe(
        "Where the session's claims come from: `id_token` (always read), `userinfo` (fetched with the access token after login and after each refresh; its `sub` must equal the ID token's), `access_token` (only when it is a JWT from this issuer that verifies with its keys; else skipped). Applied in this order, a later source replacing a claim an earlier one set; `sub`, `iss`, `aud`, `exp`, `iat`, `nbf`, `nonce`, `azp`, `sid`, `jti`, `acr`, `amr` and `auth_time` come from the ID token only. Every claim of every source is kept (watch the size of cookie sessions). Default `[id_token, access_token]` (Keycloak's realm roles are in its access token).",
      ),
    idTokenAlgs: z
      .array(z.enum(ASYMMETRIC_JWS_ALGS))
      .min(1)
      .default(['RS256', 'ES256', 'PS256', 'EdDSA'])
      .describe(
        'Accepted ID token signature algorithms (asymmetric only). Default `[RS256, ES256, PS256, EdDSA]`.',
      ),
    clockSkew: durationDefault(
      '30s',
      "Tolerance for `exp`/`iat`/`nbf` of ID tokens, and for replicas' clocks judging each other's login states (keep it well under `session.loginTimeout`).",
    ),
    probeInterval: durationDefault(
      '10s',
      'How often the discovery document is fetched to notice an outage (through the discovery breaker), so logins answer 503 rather than send browsers to a dead provider. Apps on one issuer share one provider and must set the same value.',
    ),
    revokeOnLogout: offByDefault('Revoke the refresh and access tokens (RFC 7009) on logout.'),
    tlsInsecureSkipVerify: offByDefault(
      'Skip TLS certificate verification towards the IdP. Logged loudly. Apps on one issuer must set the same value.',
    ),
  })
  .describe('The OpenID Connect client of this app.');

const refreshSchema = z
  .strictObject({
    skew: durationDefault('60s', 'Refresh when the access token has less than this left.'),
    resultTtl: durationDefault(
      '60s',
      'How long a refresh result is kept (encrypted) for requests still carrying the old cookie.',
    ),
    maxAttempts: intDefault(1, 3, 'Failed refresh attempts per session before `cooldown` applies.'),
    cooldown: durationDefault('30s', 'Pause after `maxAttempts` failed refreshes of one session.'),
    maxConcurrent: intDefault(1, 64, 'Concurrent refresh grants per process, across all sessions.'),
    lockTtl: durationDefault(
      '5s',
      'Lease of the cross-replica refresh lock, renewed every third of it while the grant runs (however long the provider takes); after a holder dies, another replica takes over once it lapses, so this is how long a replica killed mid-refresh delays that session. Keep it above 3 × `store.redis.commandTimeout`.',
    ),
    outageGrace: durationDefault(
      '5m',
      'While the store is down (and until it has settled), a session whose access token expired less than this long ago is served on its current tokens instead of refreshed: without the shared lock, two replicas could spend the same rotating refresh token, and providers with reuse detection then revoke the whole grant. The session is refreshed once the store is back; past the grace it is refreshed anyway. The same holds for a request whose wait for its refresh runs out on the store, on another replica’s grant (a replica killed mid-grant holds the lock until `lockTtl` lapses), or on a grant right after a store outage (every session whose tokens expired during it is refreshed at once): it is served on its current tokens instead of 503. Upstreams that check the access token themselves see an expired one meanwhile. `0s` refreshes at once.',
    ),
    waitTimeout: durationDefault(
      '5s',
      "Longest a request whose access token has expired waits for its refresh (here or on another replica) before answering 503; the refresh runs on and the next request uses its result. A request whose access token still works never waits: its refresh runs in the background. Keep it under Envoy's ext_authz timeout.",
    ),
  })
  .prefault({})
  .describe('Access-token refresh (SPEC §5).');

const sessionSchema = z
  .strictObject({
    store: z
      .enum(['cookie', 'server'])
      .default('cookie')
      .describe(
        '`cookie`: tokens encrypted in the cookie; `server`: the cookie holds a ticket and tokens live in `store`. Default `cookie`.',
      ),
    secrets: z
      .array(
        z.string().superRefine(
          // A short secret is reported once, as short.
          reportProblem((secret) =>
            Buffer.byteLength(secret) < 32
              ? 'must be at least 32 bytes long'
              : sessionSecretProblem(secret),
          ),
        ),
      )
      // Checked with the rest of the app (cross-field rules): an API-only app needs none.
      .default([])
      .describe(
        `Session keys, each at least 32 bytes; the first encrypts, all decrypt (rotation). Or \`secretsFile\`: a file with one secret per line. Required (at least one), except in an API-only app (no \`oidc.clientId\`). Placeholders (\`REPLACE…\`, \`changeme\`, \`example\`, \`secret\`, \`password\`, …) and predictable keys (few distinct characters, repeated patterns, runs like \`abcdef\`) are refused; generate each with \`${GENERATE_SECRET_COMMAND}\`.`,
      ),
    cookieName: z
      .string()
      .regex(HTTP_TOKEN, 'must be a cookie name (an HTTP token)')
      .optional()
      .describe(
        'Session cookie name (chunks are `name.0`, `name.1`, …; login flows `name_login_…`). Default `_eoa_<app name>`: each app its own. Two apps whose cookies reach the same host must not share a name.',
      ),
    maxAge: durationDefault('24h', 'Absolute session lifetime, enforced on the server.'),
    idleTimeout: duration()
      .optional()
      .describe('End a session unused for this long. Duration, default: off.'),
    sameSite: z
      .enum(['lax', 'strict', 'none'])
      .default('lax')
      .describe('SameSite attribute of the session cookie. Default `lax`.'),
    domain: z
      .string()
      .min(1)
      // Written verbatim into `Set-Cookie`: a host name only, so no `;` or CR/LF reaches a header.
      .regex(/^\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'must be a host name such as example.com')
      .optional()
      .describe(
        'Domain attribute of the session cookie. Default: none (host-only, `__Host-` prefix).',
      ),
    secure: z
      .boolean()
      .optional()
      .describe(
        'Secure attribute. Default: unset = Secure unless the request is http on loopback.',
      ),
    maxPendingLogins: intDefault(
      1,
      5,
      'Login-state cookies kept at once per browser (several tabs logging in).',
    ),
    loginTimeout: durationDefault('10m', 'How long a started login may take.'),
  })
  .prefault({})
  .describe('Browser sessions (SPEC §9).');

const publicPathSchema = z
  .strictObject({
    prefix: urlPath
      .optional()
      .describe(
        'Paths starting with this prefix are public, when every reading of the path does (decoded, `;params` stripped, dot segments resolved: see the security model).',
      ),
    exact: urlPath
      .optional()
      .describe('This exact path is public, when every reading of the path is this path.'),
    methods: httpMethods
      .optional()
      .describe('Only these methods are public; `GET` also covers `HEAD`. Default: all.'),
  })
  .refine(
    (entry) => (entry.prefix === undefined) !== (entry.exact === undefined),
    'must have exactly one of prefix or exact',
  )
  .transform(
    (entry): { prefix: string; methods?: string[] } | { exact: string; methods?: string[] } => {
      const methods = entry.methods === undefined ? {} : { methods: entry.methods };
      return entry.prefix !== undefined
        ? { prefix: entry.prefix, ...methods }
        : { exact: entry.exact ?? '', ...methods };
    },
  );

const bearerIssuerSchema = z.strictObject({
  issuer: issuerUrl.describe(
    'Issuer of these tokens; a token is routed here when its `iss` is exactly this string. https, or http on loopback only. Required.',
  ),
  jwksUri: issuerUrl
    .optional()
    .describe(
      "The issuer's JWKS URL. Default: `jwks_uri` from `<issuer>/.well-known/openid-configuration`, read at the first token of this issuer.",
    ),
  audiences: z
    .array(z.string().min(1))
    .min(1, 'must list at least one audience')
    .describe('Accepted `aud` values of tokens from this issuer. Required.'),
  identifierClaim: claimAddress
    .refine(
      (claim) => addressNames(claim)?.join('.') !== 'email',
      'cannot be email (an unverified email can be spoofed); use sub or a stable id claim',
    )
    .default('sub')
    .describe('Claim that identifies the caller, by claim address. Default `sub`.'),
  allowedClients: emptyListDefault(
    z.string().min(1),
    'Client ids accepted as `azp`/`client_id` from this issuer; empty: any.',
  ),
});

const bearerSchema = z
  .strictObject({
    enabled: offByDefault('Accept `Authorization: Bearer` tokens from machine clients.'),
    audiences: emptyListDefault(z.string().min(1), 'Accepted `aud` values; required when enabled.'),
    identifierClaim: claimAddress
      .refine(
        (claim) => addressNames(claim)?.join('.') !== 'email',
        'cannot be email (an unverified email can be spoofed); use sub or a stable id claim',
      )
      .default('sub')
      .describe(
        'Claim that identifies the caller, by claim address. `email` is refused. Default `sub`.',
      ),
    requireJwtType: offByDefault('Require the JWT `typ` header `at+jwt` (RFC 9068).'),
    requiredScopes: emptyListDefault(scopeToken, 'Scopes every bearer token must all carry.'),
    paths: emptyListDefault(
      z.strictObject({
        ...pathRuleMatch(),
        requiredScopes: z
          .array(scopeToken)
          .min(1, 'must list at least one scope')
          .describe('Scopes the token must all carry on these paths.'),
      }),
      'Extra required scopes per path prefix, in addition to `requiredScopes`; every matching rule applies.',
    ),
    cacheMax: intDefault(
      0,
      10_000,
      'Verified JWTs kept (by a hash of the token, until `exp`) so a hot token is not verified again. 0 turns the cache off.',
    ),
    maxTokenAge: durationDefault('24h', 'Refuse tokens whose `iat` is older than this.'),
    clockSkew: durationDefault('30s', 'Tolerance for `exp`/`iat`/`nbf`.'),
    overridesCookie: offByDefault('A bearer header wins over a session cookie.', 'the cookie wins'),
    passAuthorizationHeader: offByDefault(
      'Forward the caller’s `authorization` header upstream.',
      'removed',
    ),
    introspection: z
      .strictObject({
        enabled: offByDefault('Introspect opaque tokens (RFC 7662).'),
        clientId: z
          .string()
          .min(1)
          .optional()
          .describe('Client id for the introspection endpoint; required when enabled.'),
        clientSecret: issuedSecret('client secret')
          .optional()
          .describe(
            'Client secret for the introspection endpoint. Or `clientSecretFile`. Template values are refused as in `oidc.clientSecret`.',
          ),
        cacheMax: intDefault(0, 10_000, 'Introspection results cached (until `exp`).'),
      })
      .optional()
      .describe('Opaque-token introspection. Default: off.'),
    allowedClients: emptyListDefault(
      z.string().min(1),
      'Client ids accepted as `azp`/`client_id`; multi-audience tokens need `azp` in this list.',
    ),
    issuers: emptyListDefault(
      bearerIssuerSchema,
      "Further issuers of bearer tokens (CI systems, Kubernetes service accounts, partner IdPs), each with its own keys, audiences and identifier claim; the app's `oidc.issuer` with the keys above stays the first. A token goes to the issuer its (not yet verified) `iss` names exactly, and is then verified with that issuer's keys only; a token naming no configured issuer is refused without any fetch. Each issuer's keys are fetched at its first token and then cached and refetched like the app's own.",
    ).refine(
      (issuers) => new Set(issuers.map((entry) => entry.issuer)).size === issuers.length,
      'must not list an issuer twice',
    ),
    dpop: z
      .strictObject({
        enabled: offByDefault(
          'Accept DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with a `DPoP` proof signed by the key the token is bound to (`cnf.jkt`), for this request’s method and URL, fresh and never seen before on any replica (replay marks in the store; 503 while the store cannot record them).',
          'a DPoP-bound token is refused',
        ),
        required: offByDefault(
          'Refuse plain `Authorization: Bearer` for this app: every token must be DPoP-bound and come with a proof. Needs `enabled`.',
        ),
        algs: z
          .array(z.enum(ASYMMETRIC_JWS_ALGS))
          .min(1, 'must list at least one algorithm')
          .default([...ASYMMETRIC_JWS_ALGS])
          .describe(
            'JWS algorithms a proof may be signed with (asymmetric only; `none` and `HS*` are never accepted), announced in the `WWW-Authenticate: DPoP algs` challenge. Default every asymmetric algorithm: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA.',
          ),
        maxAge: durationDefault(
          '1m',
          'How old a proof (its `iat`) may be; a proof’s replay mark is kept this long plus twice `clockSkew`.',
        ).refine((ms) => ms >= 1_000 && ms <= 3_600_000, 'must be between 1s and 1h'),
        clockSkew: durationDefault(
          '5s',
          'How far in the future a proof’s `iat` may be, and how much older than `maxAge`.',
        ).refine((ms) => ms <= 300_000, 'must be at most 5m'),
        nonce: z
          .strictObject({
            enabled: offByDefault(
              'Require a server nonce in every proof (RFC 9449 §9): a proof without a current one gets 401 `use_dpop_nonce` with a `DPoP-Nonce` header to retry with. Nonces are stateless (an HMAC of the time window under a key derived from the first `session.secrets` entry), so every replica sharing the secret accepts them.',
            ),
            lifetime: durationDefault(
              '5m',
              'Time window of one nonce; a nonce is accepted during its window and the next one.',
            ).refine((ms) => ms >= 10_000 && ms <= 86_400_000, 'must be between 10s and 24h'),
          })
          .prefault({})
          .describe('Server-provided DPoP nonces.'),
      })
      .prefault({})
      .describe('DPoP sender-constrained tokens (RFC 9449). Off by default.'),
    mtls: z
      .strictObject({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'Accept certificate-bound tokens (RFC 8705 §3, `cnf.x5t#S256`) when the client certificate Envoy saw has that SHA-256 thumbprint; the certificate comes from the CheckRequest (`source.certificate`, Envoy’s `include_peer_certificate`) or, with `xfccHops`, from `x-forwarded-client-cert`. With false, every certificate-bound token is refused. Default true.',
          ),
        xfccHops: intDefault(
          0,
          0,
          'Proxies (Envoy included when it sets or appends the header) that write `x-forwarded-client-cert` and strip what the client sent: 0 ignores the header and takes the certificate from the TLS connection Envoy terminated (`source.certificate`); N takes the `Cert` of the Nth element from the right, and `source.certificate` is then ignored (the peer is a proxy).',
        ),
      })
      .prefault({})
      .describe('Certificate-bound tokens (RFC 8705).'),
    failureThrottle: z
      .strictObject({
        maxFailures: intDefault(
          1,
          20,
          'Failed bearer attempts per client IP within `window` before 429.',
        ),
        window: durationDefault('1m', 'Window of the failure count.'),
      })
      .prefault({})
      .describe('Per-client-IP failure throttle.'),
  })
  .prefault({})
  .describe('Bearer tokens for machine clients (SPEC §8). Off by default.');

const authorizationSchema = z
  .strictObject({
    ...ruleFields(),
    ...stepUpFields(),
    groupsClaim: claimAddress
      .default('groups')
      .describe('Claim holding the groups, by claim address. Default `groups`.'),
    rolesClaims: z
      .array(claimAddress)
      .default(['roles', 'realm_access.roles'])
      .describe('Claims holding roles, by claim address. Default `[roles, realm_access.roles]`.'),
    paths: emptyListDefault(
      z.strictObject({
        ...pathRuleMatch(),
        ...ruleFields(),
        ...stepUpFields(),
      }),
      'Extra rules for path prefixes, checked in addition to the app rules.',
    ),
  })
  .prefault({})
  .describe('Who may pass once logged in (SPEC §6). A failed rule is 403.');

const upstreamHeadersSchema = z
  .record(headerName, headerTemplate)
  .default({})
  .transform((headers): Record<string, string> => {
    const merged: Record<string, string> = { ...DEFAULT_UPSTREAM_HEADERS, ...headers };
    for (const [name, template] of Object.entries(merged)) {
      if (template === '') delete merged[name];
    }
    return merged;
  })
  .superRefine(
    reportProblem((headers) => {
      // Defaults stay scrubbed when turned off; authorization and x-id-token may be added.
      const names = new Set([
        ...Object.keys(DEFAULT_UPSTREAM_HEADERS),
        ...Object.keys(headers),
        'authorization',
        'x-id-token',
      ]);
      let bytes = 0;
      for (const name of names) bytes += removalListBytes(name);
      if (bytes <= maxIdentityRemovalBytes) return undefined;
      return `HTTP mode would list ${bytes} bytes of header names to remove (every spelling with - or _), over ${maxIdentityRemovalBytes}: use fewer identity headers or fewer "-" in their names`;
    }),
  )
  .describe(
    'Identity headers sent upstream: lower-case header name (at most 8 `-` or `_`) → template over `claims`, `tokens`, `app` (`{{ claims.email }}`, `{{ app.name }}`, `{{ tokens.access_token }}`); `claims.` is followed by a claim address (`{{ claims.realm_access.roles }}`, `{{ claims.https://example.com/roles }}`, `{{ claims["my claim"] }}`). Merged over the defaults `x-auth-request-user`, `-email`, `-groups`, `-preferred-username`; map a header to `""` to disable it (it is then absent from the resolved map). Values go as UTF-8 bytes in both modes; a value that is empty, over 8 KiB, or holds a control character (CR, LF, NUL, HTAB, DEL, C1), U+2028/U+2029 or a lone surrogate leaves its header out. A request header whose name folds to one of these (`_` for `-`, any case) is removed.',
  );

/** The identity claims an upstream assertion carries unless `claims` maps one to `""`. */
export const DEFAULT_ASSERTION_CLAIMS: Readonly<Record<string, string>> = Object.freeze({
  sub: 'sub',
  email: 'email',
  name: 'name',
  preferred_username: 'preferred_username',
  groups: 'groups',
});

/** Claims of an upstream assertion the server sets itself. */
const RESERVED_ASSERTION_CLAIMS: ReadonlySet<string> = new Set([
  'iss',
  'aud',
  'iat',
  'exp',
  'nbf',
  'jti',
  'client_id',
]);

const upstreamAssertionSchema = z
  .strictObject({
    header: headerName
      .default('x-auth-request-assertion')
      .describe(
        'Request header the assertion goes upstream in (as is, no `Bearer`); removed from every incoming request in any spelling, like the identity headers. Default `x-auth-request-assertion`.',
      ),
    audience: z
      .string()
      .min(1, 'must not be empty')
      .describe('`aud` of every assertion: what the upstream checks it was meant for. Required.'),
    issuer: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe('`iss` of every assertion. Default `urn:envoy-oidc-authz:<app name>`.'),
    ttl: durationDefault('5m', 'Lifetime of one assertion (`exp` − `iat`), at most 1h.').refine(
      (ms) => ms >= 10_000 && ms <= 3_600_000,
      'must be between 10s and 1h',
    ),
    alg: z
      .enum(ASSERTION_ALGS)
      .optional()
      .describe(
        'JWS algorithm. Default: the one the signing key implies (EC P-256 → `ES256`, P-384 → `ES384`, P-521 → `ES512`, RSA → `RS256`, Ed25519 → `EdDSA`); `ES256` for a generated key.',
      ),
    signingKey: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe(
        'The signing key, shared by every replica: a PEM private key, a private JWK, or several (PEM blocks one after the other, or a JWK Set `{"keys": [...]}`): the first signs, the others (private or public) are only published in the JWKS, to announce the next key or keep the last one. Or `signingKeyFile`, re-read on change. Default: a key generated at start, which suits one replica only (logged as a warning).',
      ),
    claims: z
      .record(
        z
          .string()
          .min(1)
          .refine((name) => !RESERVED_ASSERTION_CLAIMS.has(name), 'is set by the server itself'),
        z.union([claimAddress, z.literal('')]),
      )
      .default({})
      .transform((claims): Record<string, string> => {
        const merged: Record<string, string> = { ...DEFAULT_ASSERTION_CLAIMS, ...claims };
        for (const [name, address] of Object.entries(merged)) {
          if (address === '') delete merged[name];
        }
        return merged;
      })
      .describe(
        'Claims of the assertion: claim name → claim address in the user\'s claims (`roles: realm_access.roles`), copied as JSON values (lists stay lists). Merged over the defaults `sub`, `email`, `name`, `preferred_username`, `groups`; map one to `""` to leave it out. A value over 4 KiB is left out.',
      ),
  })
  .superRefine((assertion, ctx) => {
    if (assertion.signingKey === undefined) return;
    const keys = readSigningKeys(assertion.signingKey, assertion.alg);
    if (typeof keys === 'string') {
      ctx.addIssue({
        code: 'custom',
        path: ['signingKey'],
        message: `is not a usable signing key: ${keys}`,
      });
    }
  })
  .optional()
  .describe(
    "A signed identity for the upstream: every session or bearer allow carries a short-lived JWT signed by this server, whose claims are the user's (and for a bearer token, the client's `client_id`), with `iss`, `aud`, `iat`, `exp`, `jti` and a `kid` header. The public keys are served as a JWKS at `/.well-known/jwks.json` on the HTTP listener. Assertions are reused until half their `ttl` has passed. See docs/upstream-identity.md. Default: off.",
  );

/** Keys of `dynamic_metadata` the server always sets itself. */
const RESERVED_METADATA_KEYS: ReadonlySet<string> = new Set(['reason', 'app']);

const dynamicMetadataSchema = z
  .record(
    z
      .string()
      .regex(
        /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/,
        'must be 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or _)',
      )
      .refine((key) => !RESERVED_METADATA_KEYS.has(key), 'is set by the server itself'),
    z.string().superRefine(
      reportProblem((source) => {
        const compiled = compileTemplate(source);
        if (!compiled.ok) return compiled.message;
        // Envoy writes dynamic metadata to access logs: no credential goes there.
        return compiled.tokens.length > 0 ? 'must not use tokens.*' : undefined;
      }),
    ),
  )
  .default({})
  .describe(
    "Identity for Envoy's own filters (RBAC, rate limit, access log) without parsing headers: metadata key → template in the language of `upstreamHeaders` (`{{ claims.email }}`, `{{ app.name }}`), plus `{{ auth.method }}` (`session` or `bearer`) and `{{ auth.client_id }}` (a session: the app's `oidc.clientId`; a bearer token: its `azp`, else its `client_id`); `tokens.*` is refused. Rendered on every session or bearer allow into the CheckResponse's `dynamic_metadata`, which Envoy files under the namespace `envoy.filters.http.ext_authz` beside `reason` and `app` (reserved keys); values are strings, an empty or unsafe one is left out. gRPC mode only: Envoy's `http_service` carries no metadata. Default {}.",
  );

/** One app: an OIDC client with its own match, session, rules and headers. */
export const appSchema = z
  .strictObject({
    name: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
        'must be 1-63 of A-Z a-z 0-9 . _ - (not starting with . _ -)',
      )
      .describe('Unique app name; also `context_extensions` `app=<name>`. Required.'),
    match: matchSchema,
    oidc: oidcSchema,
    refresh: refreshSchema,
    session: sessionSchema,
    publicPaths: emptyListDefault(
      publicPathSchema,
      'Paths that need no login (identity headers still scrubbed).',
    ),
    cors: z
      .strictObject({
        allowPreflight: offByDefault(
          'Let CORS preflights through without a session or token: an `OPTIONS` request carrying both `Origin` and `Access-Control-Request-Method` (non-empty) goes to the upstream, which answers it, with identity headers and our cookies removed as on a public path. Nothing else passes: `OPTIONS` without both headers, or those headers on another method, needs a session or token as usual.',
        ),
      })
      .prefault({})
      .describe('Cross-origin requests (CORS, WHATWG Fetch §3.2.2).'),
    bearer: bearerSchema,
    authorization: authorizationSchema,
    upstreamHeaders: upstreamHeadersSchema,
    dynamicMetadata: dynamicMetadataSchema,
    upstreamAssertion: upstreamAssertionSchema,
    passAccessToken: offByDefault('Also send `authorization: Bearer <access token>` upstream.'),
    passIdToken: offByDefault('Also send the ID token upstream as `x-id-token`.'),
  })
  .describe('One protected application.');

/** The session cookie name of an app that does not set one: each app its own. */
export function defaultCookieName(appName: string): string {
  return `_eoa_${appName}`;
}

/**
 * The session cookie name every app used by default before apps were bound to their own
 * cookies; expired on sight by apps on their own default name (see `legacyCookieNameFor`).
 */
export const LEGACY_COOKIE_NAME = '_eoa';

/** An app with the defaults that depend on other fields filled in (the cookie name). */
export const resolvedAppSchema = appSchema.transform((app) => ({
  ...app,
  session: { ...app.session, cookieName: app.session.cookieName ?? defaultCookieName(app.name) },
  /** False for an API-only app (no `oidc.clientId`): bearer tokens only, no login, no cookie. */
  browserLogin: app.oidc.clientId !== undefined,
}));

// --- The whole document ---

const redisSchema = z
  .strictObject({
    url: z
      .string()
      .refine(
        (text) => /^rediss?:$/.test(URL.parse(text)?.protocol ?? ''),
        'must be a redis:// or rediss:// URL',
      )
      .superRefine((text, ctx) => {
        // `redis://:<password>@host` carries the password too; only that part is examined.
        const password = URL.parse(text)?.password ?? '';
        if (password === '') return;
        const problem = issuedSecretProblem(decodeUriComponentOr(password), 'Redis password');
        if (problem !== undefined) {
          ctx.addIssue({ code: 'custom', message: `the password in it ${problem}` });
        }
      })
      .optional()
      .describe('Standalone server, `redis://host:port/db` or `rediss://` for TLS.'),
    sentinels: z
      .array(hostPort)
      .min(1)
      .optional()
      .describe('Sentinel addresses (`host:port`); needs `name`.'),
    name: z.string().min(1).optional().describe('Sentinel master name.'),
    sentinelUsername: z
      .string()
      .min(1)
      .optional()
      .describe(
        'ACL user name the sentinels themselves require (Redis 6.2+ sentinels with ACL users). Default: none.',
      ),
    sentinelPassword: issuedSecret('Redis password')
      .optional()
      .describe(
        "Password the sentinels themselves require (their `requirepass`, the Bitnami chart's default), apart from `password`, which is the data servers'. Or `sentinelPasswordFile`. Default: none.",
      ),
    cluster: z.array(hostPort).min(1).optional().describe('Cluster seed nodes (`host:port`).'),
    username: z.string().min(1).optional().describe('ACL user name.'),
    password: issuedSecret('Redis password')
      .optional()
      .describe(
        'ACL password. Or `passwordFile`. A template value left in place (`REPLACE…`, `changeme`, `placeholder`, `<…>`, a literal `${…}`, `...`) is refused.',
      ),
    tls: z
      .strictObject({
        ca: z.string().min(1).optional().describe('CA bundle (PEM). Or `caFile`.'),
        cert: z
          .string()
          .min(1)
          .optional()
          .describe('Client certificate (PEM) for mTLS. Or `certFile`.'),
        key: z.string().min(1).optional().describe('Client key (PEM) for mTLS. Or `keyFile`.'),
        insecureSkipVerify: offByDefault('Skip certificate verification. Logged loudly.'),
      })
      .optional()
      .describe(
        'TLS towards Redis: with `sentinels`, to the sentinels and to the servers they name; with `cluster`, to every node. Default: TLS only with a rediss:// URL.',
      ),
    keyPrefix: z
      .string()
      .default('eoa:')
      .describe('Prefix of every key, per deployment. Default `eoa:`.'),
    commandTimeout: durationDefault(
      '1s',
      'Fail a command after this long so breakers see an outage.',
    ),
    replicaAcks: z
      .strictObject({
        replicas: z.int().min(1).describe('Replicas that must hold a write (Redis `WAIT`).'),
        timeout: duration()
          .prefault('500ms')
          .describe(
            'How long to wait for them; capped at the store call timeout (half of `request.budget`, or `commandTimeout` if shorter) less 10ms, so a missing replica is told from a hung master. Default `500ms`.',
          ),
      })
      .optional()
      .describe(
        'A write counts as done only once this many replicas hold it, so a Sentinel failover loses nothing acknowledged. Default off (the master alone).',
      ),
  })
  .prefault({})
  .describe('Redis connection: exactly one of `url`, `sentinels` + `name`, or `cluster`.');

/**
 * Tuning of one kind of circuit breaker; `resetDefault` is how long it stays open by default
 * (a PING to Redis is a cheaper probe than a call to a provider).
 */
const breakerSchema = (resetDefault: string) =>
  z
    .strictObject({
      errorThresholdPercentage: z
        .number()
        .gt(0)
        .max(100)
        .default(50)
        .describe('Percentage of failed calls in the window above which it opens. Default 50.'),
      volumeThreshold: z
        .number()
        .int()
        .min(0)
        .default(5)
        .describe('Fewest calls in the window before it may open. Default 5.'),
      rollingWindow: durationDefault('10s', 'Window the failure percentage is taken over.')
        // Counted in 10 buckets, each at least 1 ms long.
        .refine((ms) => ms >= 10, 'must be at least 10ms'),
      resetTimeout: durationDefault(
        resetDefault,
        'How long it stays open before one probe call.',
      ).refine((ms) => ms > 0, 'must be longer than 0ms'),
    })
    .prefault({});

/**
 * Bounds on the gRPC listener (SPEC §14): what one connection, one stream and all of them
 * together may hold, and for how long. Exported so tools that build the transport without a
 * config file take the same defaults.
 */
export const grpcLimitsSchema = z
  .strictObject({
    maxConcurrentStreams: z
      .int()
      .min(1)
      .max(2 ** 31 - 1)
      .default(256)
      .describe(
        'Streams one connection may have open, advertised as `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 §6.5.2) and enforced: Envoy opens another connection when it needs more. Default 256.',
      ),
    maxMessageBytes: z
      .int()
      .min(1024)
      .max(2 ** 31 - 1)
      .default(4_194_304)
      .describe(
        "Largest CheckRequest accepted, in bytes, after decompression; a larger one is refused with `RESOURCE_EXHAUSTED` as soon as its length prefix arrives, never buffered. Keep it above `with_request_body.max_request_bytes` plus Envoy's `max_request_headers_kb`: a refused Check is a gRPC error, not a decision. Memory is bounded by `maxBufferedBytes`, not by this. Default 4194304 (4 MiB, as grpc-js).",
      ),
    maxBufferedBytes: z
      .int()
      .min(1024)
      .max(2 ** 40)
      .default(67_108_864)
      .describe(
        'Request bytes held across every stream of the process while messages arrive. A stream is charged its declared message length; over the budget, the stream holding the most is ended with `RESOURCE_EXHAUSTED`, so memory stays bounded and small Checks still get through. Default 67108864 (64 MiB).',
      ),
    maxHeaderListBytes: z
      .int()
      .min(1024)
      .max(2 ** 31 - 1)
      .default(65_536)
      .describe(
        'Largest HTTP/2 header block of one request (`SETTINGS_MAX_HEADER_LIST_SIZE`, uncompressed); a larger one resets the stream. Default 65536.',
      ),
    maxConnections: intDefault(
      1,
      4096,
      'Open connections accepted at once; more are closed as they arrive.',
    ),
    headersTimeout: durationDefault(
      '10s',
      'A new connection that has not sent one complete request header block within this long is closed (slow headers, or none). Checked once per period, so it may take up to twice this.',
    ),
    requestTimeout: durationDefault(
      '10s',
      "A request message must arrive whole within this long of its headers, else the stream ends with `DEADLINE_EXCEEDED` however busy the client keeps it (slow bodies); Envoy's own ext_authz timeout is far shorter. Checked once per period, so up to twice this.",
    ),
    idleTimeout: durationDefault(
      '5m',
      'A connection with no open stream for this long is told to go away (GOAWAY), and closed one period later if still open. Checked once per period.',
    ),
  })
  .prefault({})
  .superRefine((limits, ctx) => {
    if (limits.maxBufferedBytes < limits.maxMessageBytes + 5) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxBufferedBytes'],
        message: 'must be at least maxMessageBytes + 5 (one whole message and its prefix)',
      });
    }
  });

/** Headers an OTLP export sets itself, or that belong to the transport. */
const exportHeadersOfOurOwn = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'host',
  'connection',
  'transfer-encoding',
  'te',
  'upgrade',
  'keep-alive',
]);

/** The whole configuration document. */
export const configSchema = z
  .strictObject({
    listen: z
      .strictObject({
        grpc: hostPort
          .default('0.0.0.0:9001')
          .describe('gRPC ext_authz and health listener. Default `0.0.0.0:9001`.'),
        http: hostPort
          .default('0.0.0.0:9002')
          .describe('HTTP ext_authz and IdP-facing listener. Default `0.0.0.0:9002`.'),
        admin: hostPort
          .default('0.0.0.0:9090')
          .describe('Admin listener: /healthz, /readyz, /metrics. Default `0.0.0.0:9090`.'),
        httpPathPrefix: z
          .string()
          .regex(
            /^(\/[^\s?#]*[^\s?#/])?$/,
            'must be empty or a path like /authz, without a trailing slash',
          )
          .default('')
          .describe(
            "The `path_prefix` Envoy's `http_service` (Istio `pathPrefix`) puts before each path; stripped before matching. Default empty.",
          ),
        tls: z
          .strictObject({
            cert: z
              .string()
              .min(1)
              .describe('Server certificate chain (PEM). Or `certFile`. Required with `tls`.'),
            key: z
              .string()
              .min(1)
              .describe('Private key of `cert` (PEM). Or `keyFile`. Required with `tls`.'),
            clientCa: z
              .string()
              .min(1)
              .optional()
              .describe(
                'CA bundle (PEM) that client certificates must chain to: set, every client must present one (mTLS). Or `clientCaFile`. Default: no client certificate asked for.',
              ),
          })
          .optional()
          .describe(
            'TLS on the gRPC and HTTP listeners (the admin listener stays plain for probes and scrapes). Files given as `…File` are re-read when they change and on SIGHUP; turning TLS or `clientCa` on or off takes a restart. Default: plain text.',
          ),
      })
      .prefault({})
      .describe('Listen addresses, `host:port`.'),
    log: z
      .strictObject({
        level: z
          .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
          .default('info')
          .describe('Minimum level of the JSON log lines. Default `info`.'),
        access: z
          .strictObject({
            enabled: offByDefault(
              'Log one info line per Check (`msg: check`): request id, app, verdict, reason, status and latency in ms. Takes a restart.',
            ),
            sampleRate: z
              .number()
              .min(0)
              .max(1)
              .default(1)
              .describe(
                'The share of Checks the access log writes, 0 to 1. Default 1 (every Check).',
              ),
          })
          .prefault({})
          .describe('The access log; off by default, and then it costs nothing.'),
        subject: z
          .enum(['plain', 'hash'])
          .default('hash')
          .describe(
            "How a user's `sub` appears in login and logout lines: `plain` as the provider sent it; `hash` a keyed hash (HMAC-SHA256 with a key derived from the app's first `session.secrets` entry, base64url, 16 characters), the same user the same value on every replica. Default `hash`.",
          ),
      })
      .prefault({})
      .describe('Logging.'),
    tracing: z
      .strictObject({
        enabled: offByDefault(
          "Send a span per Check (and its provider and store calls as child spans) to an OpenTelemetry collector over OTLP/HTTP. The caller's trace is continued from W3C `traceparent`/`tracestate` or B3 (`b3`, `x-b3-*`) request headers.",
          'no span is made and a Check pays nothing',
        ),
        endpoint: absoluteUrl
          .default('http://127.0.0.1:4318/v1/traces')
          .describe(
            "The collector's OTLP/HTTP traces URL (JSON encoding). Default `http://127.0.0.1:4318/v1/traces`.",
          ),
        serviceName: z
          .string()
          .min(1)
          .max(256)
          .default('envoy-oidc-authz')
          .describe('`service.name` of the spans. Default `envoy-oidc-authz`.'),
        sampleRate: z
          .number()
          .min(0)
          .max(1)
          .default(1)
          .describe(
            "The share of Checks that start a new trace, 0 to 1, for requests that carry no sampling decision; a caller's decision (the `sampled` flag of `traceparent`, B3's) is always followed. Default 1.",
          ),
        headers: z
          .record(
            lowerCaseHeaderName.refine(
              (name) => !exportHeadersOfOurOwn.has(name),
              'is set by the exporter itself',
            ),
            z
              .string()
              .regex(/^[\x20-\x7e\t]*$/, 'must be printable ASCII (no CR, LF or other controls)'),
          )
          .default({})
          .describe(
            "Extra headers of every export, e.g. the collector's credentials (`authorization: Bearer ${OTLP_TOKEN}`); values are never logged. Default none.",
          ),
        exportTimeout: durationDefault(
          '10s',
          'Longest one export may take; a batch not taken by then is dropped and counted in `eoa_trace_spans_dropped_total`.',
        ).refine((ms) => ms >= 1, 'must be at least 1ms'),
        flushInterval: durationDefault(
          '5s',
          'Longest a finished span waits before its batch is sent (a full batch leaves at once).',
        ),
        maxQueueSize: intDefault(
          1,
          2048,
          'Finished spans held for export at most; past it spans are dropped and counted, never waited for.',
        ),
        maxBatchSize: intDefault(1, 512, 'Spans per export at most.'),
      })
      .prefault({})
      .describe(
        'OpenTelemetry tracing; off by default. Applied on reload (the spans queued before it are still sent).',
      ),
    request: z
      .strictObject({
        trustedHops: intDefault(
          0,
          0,
          'Proxies in front of Envoy whose `x-forwarded-for` entries are trusted: 0 ignores the header; N takes the Nth entry from the right as the client.',
        ),
        maxHeaderBytes: intDefault(
          1024,
          65_536,
          'Largest total size of request headers accepted, in bytes.',
        ),
        budget: durationDefault(
          '100ms',
          "Longest a Check waits for anything (the store, the provider, a refresh) before it is answered: past it, 503 `budget_exceeded` with `Retry-After`, while the work goes on and the next request uses its result. Store calls time out at half of it (or `store.redis.commandTimeout`, if shorter) and fall back as when the store is down. Keep it under Envoy's ext_authz `timeout` (200ms by default), with room for the network. A Check whose `grpc-timeout` (Envoy's timeout, sent with every call) is shorter is answered before that instead, keeping a tenth of it (5 to 50ms) for the answer to arrive.",
        ).refine((ms) => ms >= 10 && ms <= 60_000, 'must be between 10ms and 60s'),
      })
      .prefault({})
      .describe('Request parsing limits and the time budget of one Check.'),
    pages: z
      .strictObject({
        templatesDir: z
          .string()
          .min(1)
          .optional()
          .describe(
            'Directory of HTML templates for the pages of refusals a browser sees: `<status>.html` (`400.html`, `403.html`, `503.html`; a sign-in that did not complete is 400 or 401) or `error.html` for every other status. Placeholders `{{title}}`, `{{message}}`, `{{requestId}}`, `{{retryAfter}}`, `{{logoutUrl}}`, `{{retryUrl}}` are replaced by their HTML-escaped values (empty when they do not apply); any other placeholder, or a file that cannot be read, is a config error. Read at start and on reload (and when a file changes). Relative to the config file. Default: the built-in page.',
          ),
        templates: z
          .record(
            z.string().regex(pageTemplateName, 'must be <status>.html or error.html'),
            z.string().superRefine((text, ctx) => {
              const problem = templateProblem(text);
              if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
            }),
          )
          .optional()
          .describe(
            'The same templates inline, by file name (`403.html: "<!doctype html>…"`); filled from `templatesDir` when that is set. Default: none.',
          ),
      })
      .prefault({})
      .describe('The HTML pages a browser sees for a refusal; API clients get JSON.'),
    allowUnmatched: offByDefault(
      'Allow requests no app matches, untouched.',
      '403 `no app for host`',
    ),
    shutdown: z
      .strictObject({
        drainDelay: durationDefault(
          '10s',
          'How long the server keeps serving after SIGTERM while it reports NOT_SERVING (gRPC health, `/readyz`), so health checks and endpoint removal take it out of rotation before it stops accepting; a second SIGTERM or SIGINT ends the delay at once. Longer than the load balancer needs to see NOT_SERVING (Envoy: health-check `interval` × `unhealthy_threshold` + `timeout`).',
        ),
        drainTimeout: durationDefault(
          '10s',
          'How long in-flight checks may finish once the server stops accepting, after `drainDelay`.',
        ),
      })
      .prefault({})
      .describe('Graceful shutdown.'),
    limits: z
      .strictObject({
        grpc: grpcLimitsSchema.describe('The gRPC listener (`listen.grpc`).'),
      })
      .prefault({})
      .describe('Transport bounds: connections, streams, buffered bytes and timeouts.'),
    breakers: z
      .strictObject({
        store: breakerSchema('1s').describe(
          'The shared store (Redis). Its probe is a PING, so it stays open 1s by default: a failover or a restart is back in service within a second of Redis.',
        ),
        idp: breakerSchema('5s').describe(
          'Each provider: discovery and JWKS, token endpoint, revocation, introspection (one breaker each).',
        ),
      })
      .prefault({})
      .describe(
        'Circuit breakers (SPEC §11): only outages count as failures, never OAuth errors or 4xx.',
      ),
    store: z
      .strictObject({
        type: z
          .enum(['memory', 'redis'])
          .default('memory')
          .describe('`memory`: one replica; `redis`: shared by all replicas. Default `memory`.'),
        redis: redisSchema,
      })
      .prefault({})
      .describe('Shared state: sessions, refresh coordination, logout, replay.'),
    defaults: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        'Any app field; deep-merged under every app (the app wins, arrays are replaced, not merged).',
      ),
    deployment: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/, 'must be 1-63 of A-Z a-z 0-9 . _ : -')
      .default('default')
      .describe(
        "A name for this deployment, bound into every session and login-state cookie and server session record with the app, its issuer and client id, and `store.redis.keyPrefix`. Deployments that share a session secret must each set their own (e.g. `prod`, `staging`), so neither accepts the other's cookies. Changing it logs everyone out once. Default `default`.",
      ),
    apps: z
      .array(resolvedAppSchema)
      .min(1, 'must have at least one app')
      .describe('The protected apps.'),
  })
  .describe('envoy-oidc-authz configuration.');

// --- Resolved types ---

type DeepReadonly<T> = T extends readonly (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The resolved configuration: defaults applied, `defaults` merged into every app, durations in ms. */
export type Config = DeepReadonly<Omit<z.output<typeof configSchema>, 'defaults'>>;
/** One resolved app. */
export type AppConfig = Config['apps'][number];
export type OidcConfig = AppConfig['oidc'];
export type SessionConfig = AppConfig['session'];
export type BearerConfig = AppConfig['bearer'];
export type AuthorizationConfig = AppConfig['authorization'];
export type ClaimRule = AuthorizationConfig['claims'][number];
export type PathRule = AuthorizationConfig['paths'][number];
export type RedisConfig = Config['store']['redis'];
