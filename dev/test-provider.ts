/** A development OpenID Provider (node-oidc-provider) with counters and fault injection, for tests and the demo. */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { escapeHtml } from '../src/authz/pages.ts';
import type { CryptoKey, JWK, JWTPayload } from 'jose';

/** A user the provider knows; `login` on the sign-in form is the `sub`. */
export interface TestUser {
  readonly sub: string;
  readonly email?: string;
  readonly emailVerified?: boolean;
  readonly name?: string;
  readonly preferredUsername?: string;
  readonly groups?: readonly string[];
  /**
   * Any further claims. Their names are released with the `openid` scope, so they always land in
   * the ID token (e.g. 10 KB of padding to test large tokens).
   */
  readonly extraClaims?: Readonly<Record<string, unknown>>;
  /** Claims served at userinfo only (released with `openid`), e.g. what an IdP keeps out of ID tokens. */
  readonly userinfoClaims?: Readonly<Record<string, unknown>>;
  /**
   * Claims put in this user's JWT access tokens only, as Keycloak puts `realm_access.roles` there
   * (access tokens are JWTs only for a resource indicator, see `defaultResource`).
   */
  readonly accessTokenClaims?: Readonly<Record<string, unknown>>;
}

/** How a registered client authenticates at the token endpoint. */
export type TestClientAuthMethod =
  'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

/** A statically registered client. */
export interface TestClient {
  readonly clientId: string;
  /** Required for the `client_secret_*` methods. */
  readonly clientSecret?: string;
  /** Default: `client_secret_basic` when a secret is given, else `none` (PKCE is always required). */
  readonly authMethod?: TestClientAuthMethod;
  readonly redirectUris: readonly string[];
  readonly postLogoutRedirectUris?: readonly string[];
  /** Public key for `private_key_jwt`. */
  readonly publicJwk?: JWK;
  /** OIDC Back-Channel Logout endpoint; the ID token then carries `sid`. */
  readonly backchannelLogoutUri?: string;
  /** Default `['authorization_code', 'refresh_token']`. */
  readonly grantTypes?: readonly ('authorization_code' | 'refresh_token' | 'client_credentials')[];
  /** Default `RS256`. */
  readonly idTokenSignedResponseAlg?: 'RS256' | 'ES256';
  /**
   * Access tokens bound to the client certificate (RFC 8705 §3,
   * `tls_client_certificate_bound_access_tokens`); needs {@link TestProviderOptions.mtls}.
   */
  readonly certificateBound?: boolean;
  /**
   * Refuse this client's authorization requests unless pushed first (RFC 9126
   * `require_pushed_authorization_requests`); default false.
   */
  readonly requirePushedAuthorizationRequests?: boolean;
}

export interface TestProviderOptions {
  /** Port on {@link host}; default 0 (a free one). */
  readonly port?: number;
  /** Loopback address to listen on, which names the issuer; default `127.0.0.1`. */
  readonly host?: string;
  /**
   * The port the issuer URL names, when clients reach the provider through something in front
   * of it (a proxy listening there); default the port the provider listens on.
   */
  readonly issuerPort?: number;
  readonly clients: readonly TestClient[];
  /** Default: one demo user, `alice` (see {@link DEMO_USER}). */
  readonly users?: readonly TestUser[];
  /**
   * Scope → claim names. Default: `openid: [sub, …every extra claim name]`,
   * `email: [email, email_verified]`, `profile: [name, preferred_username, groups]`,
   * `groups: [groups]`.
   */
  readonly claims?: Readonly<Record<string, readonly string[]>>;
  /** Access-token lifetime in seconds; default 300. */
  readonly accessTokenTtlSeconds?: number;
  /** ID-token lifetime in seconds; default 3600. */
  readonly idTokenTtlSeconds?: number;
  /**
   * Seconds a rotated refresh token may still be used after its first use, each use rotating
   * again, as Okta's grace period and Auth0's reuse interval allow; default 0: strict rotation,
   * a second use is `invalid_grant` and revokes the grant.
   */
  readonly refreshTokenReuseSeconds?: number;
  /** Refresh-token lifetime in seconds; default 14 days. */
  readonly refreshTokenTtlSeconds?: number;
  /**
   * Resource indicator (RFC 8707) used when a request names none. When set, access tokens are
   * issued for it (audience = this value) in {@link accessTokenFormat}.
   */
  readonly defaultResource?: string;
  /** Further resource indicators clients may ask for with `resource=`. */
  readonly resources?: readonly string[];
  /** Format of access tokens for a resource; default `jwt`. */
  readonly accessTokenFormat?: 'jwt' | 'opaque';
  /** Scopes a resource server accepts (space separated); default `api:read api:write`. */
  readonly resourceScope?: string;
  /**
   * When refresh tokens are issued to a client allowed the `refresh_token` grant. `always`
   * (default): on every code exchange, bound to the provider session unless `offline_access` was
   * granted, as Keycloak does. `offline_access`: only when that scope survives, which this
   * provider allows only together with `prompt=consent`.
   */
  readonly refreshTokenPolicy?: 'always' | 'offline_access';
  /**
   * Grant every requested scope and claim without a consent page (first-party apps); default
   * true. With false the provider's own consent form is shown.
   */
  readonly autoConsent?: boolean;
  /**
   * Issue DPoP-bound tokens (RFC 9449) to clients that send a `DPoP` proof to the token
   * endpoint; default false.
   */
  readonly dpop?: boolean;
  /**
   * Issue certificate-bound tokens (RFC 8705 §3) to clients registered `certificateBound`. The
   * provider listens on plain HTTP, so the client certificate reaches it the way a
   * TLS-terminating proxy in front of it would pass it: URL-encoded PEM in
   * {@link CLIENT_CERT_HEADER}. Default false.
   */
  readonly mtls?: boolean;
  /**
   * The ID-token signing algorithms the provider supports and announces in discovery
   * (`id_token_signing_alg_values_supported`); default the provider's own list.
   */
  readonly idTokenSigningAlgs?: readonly ('RS256' | 'ES256')[];
  /**
   * `acr` values the provider supports, lowest first (announced in discovery). A login is
   * completed with the first `acr_values` entry it supports, else with the lowest, and `amr`
   * `["pwd"]`, as a provider whose user meets only what it offers. Default: no `acr` at all.
   */
  readonly acrValues?: readonly string[];
  /**
   * When each login is recorded to have happened (its `auth_time`), in seconds since the epoch,
   * asked at every login; default now. For sessions that are old, or dated in the future.
   */
  readonly loginTime?: () => number;
  /**
   * Offer RP-initiated logout (`end_session_endpoint`); default true. Without it the provider is
   * like those that have none (Google).
   */
  readonly rpInitiatedLogout?: boolean;
  /**
   * Pushed authorization requests (RFC 9126) at `/request`: `on` offers them (announced in
   * discovery, as oidc-provider does by default), `required` requires them of every client
   * (`require_pushed_authorization_requests: true` in discovery), `off` announces no endpoint.
   * Default `on`.
   */
  readonly par?: 'off' | 'on' | 'required';
  /**
   * Accept any login name at the sign-in form, as the form itself says: a name that is no known
   * user signs in as a new one named after it (see {@link loginAccountId}). Default false: an
   * unknown name is refused with `access_denied`, which the client shows, instead of a 500.
   */
  readonly anyLogin?: boolean;
  /** Told about every name submitted at the sign-in form, and what became of it. */
  readonly onLogin?: (login: ProviderLogin) => void;
  /**
   * Where the provider's error page offers to start again (the app's URL), so that a browser
   * meeting it (a stale or replayed sign-in form, a bad request) is never stuck. Default: the
   * provider's own error page, without a link.
   */
  readonly startAgainUrl?: string;
}

/** One name submitted at the sign-in form. */
export interface ProviderLogin {
  /** What was typed, cut to 100 characters. */
  readonly login: string;
  /** `known`: a configured user; `new`: made up for the name (`anyLogin`); else refused. */
  readonly outcome: 'known' | 'new' | 'refused';
  /** The account it signed in as; absent when refused. */
  readonly accountId?: string;
}

/** Which endpoint a fault applies to. */
export type FaultTarget =
  'token' | 'discovery' | 'jwks' | 'revocation' | 'introspection' | 'userinfo' | 'par';

/** A fault injected in front of one endpoint. */
export interface Fault {
  readonly target: FaultTarget;
  /** Delay before the request is handled (or failed), in milliseconds. */
  readonly latencyMs?: number;
  /** Answer with this status (e.g. 503) and a JSON `server_error` body instead of handling. */
  readonly status?: number;
  /**
   * With `status`, what the answer carries instead of the JSON error: nothing, or an HTML page
   * (a proxy's error page), as a non-conforming provider answers. Default `json`.
   */
  readonly body?: 'json' | 'empty' | 'html';
  /** With `status`, this exact answer instead (a misbehaving userinfo: another `sub`, a huge body). */
  readonly reply?: {
    readonly contentType: string;
    readonly body: string;
    /** Sent chunked, without a `content-length`: a size known only once it is read. */
    readonly chunked?: boolean;
  };
  /** How many requests the fault applies to; default every request until cleared. */
  readonly count?: number;
}

/** Snapshot of what the provider has served. */
export interface ProviderCounters {
  /** `grants[grantType][outcome]`, outcome is `success` or the OAuth error (`invalid_grant`). */
  readonly grants: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Every POST to the token endpoint, including those failed by an injected fault. */
  readonly tokenRequests: number;
  /** Every POST to the pushed authorization request endpoint, faults included. */
  readonly parRequests: number;
  readonly discovery: number;
  readonly jwks: number;
  readonly introspection: number;
  readonly revocation: number;
  readonly endSession: number;
  /** Back-channel logout deliveries by outcome (`success`, `error`). */
  readonly backchannelLogout: Readonly<Record<'success' | 'error', number>>;
  readonly faultsInjected: number;
}

/** One signing key of the provider. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

/** A provider-side login session. */
export interface ProviderSession {
  readonly uid: string;
  readonly accountId: string | undefined;
  readonly clients: readonly { clientId: string; sid: string; grantId: string | undefined }[];
}

export interface TestProvider {
  /** `http://<host>:<port>`, `http://127.0.0.1:<port>` by default (`issuerPort` when given). */
  readonly issuer: string;
  /** The port it listens on. */
  readonly port: number;
  /** The current signing keys (replaced by {@link rotateSigningKey}). */
  readonly keys: { readonly RS256: SigningKey; readonly ES256: SigningKey };
  /**
   * Replaces the signing key of `alg` (default RS256, the one ID tokens and access tokens are
   * signed with) by a new key pair, under a new `kid`, or under the same `kid` with `keepKid`.
   * The old key leaves the JWKS at once; sessions, grants and tokens issued are kept.
   */
  rotateSigningKey(rotation?: { alg?: 'RS256' | 'ES256'; keepKid?: boolean }): Promise<SigningKey>;
  /** Signs any JWT with a provider key (default RS256, `iss` = issuer, `iat` = now). */
  signJwt(
    payload: JWTPayload,
    options?: { alg?: 'RS256' | 'ES256'; typ?: string; kid?: string },
  ): Promise<string>;
  counters(): ProviderCounters;
  /** Why the last back-channel logout delivery failed, if one did. */
  lastBackchannelError(): string | undefined;
  resetCounters(): void;
  injectFault(fault: Fault): void;
  clearFaults(): void;
  /**
   * The next `count` refresh-token grants answer without an `id_token`, as OIDC Core §12.2
   * allows and some providers do.
   */
  withholdRefreshIdTokens(count: number): void;
  /** Revokes a grant and every token issued under it; the next refresh gets `invalid_grant`. */
  revokeGrant(grantId: string): Promise<void>;
  /** Grant ids held for an account (optionally for one client). */
  grantIds(accountId: string, clientId?: string): string[];
  /** Provider sessions, filtered by `sid` or account. */
  findSessions(filter?: { sid?: string; accountId?: string }): ProviderSession[];
  /**
   * The values of the opaque tokens the provider holds (for the opaque format, a token's value
   * is its id): refresh tokens, authorization codes, and access tokens when they are opaque.
   * For tests that must recognise every credential the server was handed.
   */
  storedTokens(model: 'RefreshToken' | 'AuthorizationCode' | 'AccessToken'): string[];
  /** Closes the listener and every open connection; state and keys are kept. */
  stop(): Promise<void>;
  /** Listens again on the same port after {@link stop}. */
  start(): Promise<void>;
  /** Stops for good. */
  close(): Promise<void>;
}

/**
 * The account a typed login name signs in as: trimmed, NFC-normalised and lower-cased (as
 * Keycloak treats user names), so `Alice` is `alice` and `José` typed in either Unicode form is
 * one account. Undefined for a name that is empty, longer than 64 characters or holds a control
 * character, CR/LF or a lone surrogate: no such name reaches a claim.
 */
export function loginAccountId(login: string): string | undefined {
  const name = login.trim().normalize('NFC').toLowerCase();
  if (name === '' || [...name].length > 64) return undefined;
  if (/[\p{Cc}\p{Cs}\u2028\u2029]/u.test(name)) return undefined;
  return name;
}

/** A user made up for a login name nobody configured (`anyLogin`): in group `users`. */
export function userForLogin(accountId: string): TestUser {
  const email = accountId.includes('@')
    ? accountId
    : `${accountId.replace(/\s+/g, '.')}@example.com`;
  return {
    sub: accountId,
    email,
    emailVerified: true,
    name: accountId,
    preferredUsername: accountId,
    groups: ['users'],
  };
}

/** Most users `anyLogin` makes up and keeps; beyond it the oldest is forgotten. */
const MAX_MADE_UP_USERS = 1_000;

/** The demo login: `alice` (any password). */
export const DEMO_USER: TestUser = {
  sub: 'alice',
  email: 'alice@example.com',
  emailVerified: true,
  name: 'Alice Example',
  preferredUsername: 'alice',
  groups: ['admins', 'users'],
};

// The parts of node-oidc-provider this module touches; it ships no type declarations.
interface OidcContext {
  readonly oidc: {
    readonly params?: Record<string, unknown>;
    readonly client: { readonly clientId: string };
    readonly account?: { readonly accountId: string };
    readonly session: { grantIdFor(clientId: string): string | undefined };
    readonly result?: { readonly consent?: { readonly grantId?: string } };
    readonly requestParamOIDCScopes: Set<string>;
    readonly requestParamScopes: Set<string>;
    readonly requestParamClaims: Set<string>;
    readonly resourceServers: Record<string, { readonly scopes: Set<string> }>;
    readonly provider: ProviderInstance;
  };
}
interface GrantInstance {
  readonly accountId: string;
  readonly clientId: string;
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  use(middleware: (ctx: TokenContext, next: () => Promise<void>) => Promise<void>): unknown;
  readonly Grant: {
    new (init: { accountId: string; clientId: string }): GrantInstance;
    find(id: string): Promise<GrantInstance | undefined>;
  };
}
type ProviderConstructor = new (issuer: string, configuration: object) => ProviderInstance;
/** What a middleware sees of a token endpoint answer. */
interface TokenContext {
  readonly path: string;
  readonly oidc?: { readonly params?: Record<string, unknown> };
  body: unknown;
}

interface ProviderModule {
  readonly default: ProviderConstructor;
  readonly errors: { readonly InvalidTarget: new (description?: string) => Error };
}

interface StoredRecord {
  readonly payload: Record<string, unknown>;
  readonly expiresAt: number;
}

/**
 * One in-memory store per provider. The provider's bundled adapter shares an LRU of 1,000
 * entries across instances, which a refresh herd can overflow; this one is unbounded, private,
 * and can be searched (sessions by `sid`, grants by account).
 */
function createStorage(refreshTokenReuseSeconds = 0) {
  const records = new Map<string, StoredRecord>();
  /** Refresh tokens used once, still usable within the reuse interval: key → first use, s. */
  const reusable = new Map<string, number>();
  const read = (key: string): Record<string, unknown> | undefined => {
    const record = records.get(key);
    if (record === undefined) return undefined;
    if (record.expiresAt <= Date.now()) {
      records.delete(key);
      return undefined;
    }
    return record.payload;
  };
  const entries = function* (model: string): Generator<[string, Record<string, unknown>]> {
    for (const key of [...records.keys()]) {
      if (!key.startsWith(`${model}:`)) continue;
      const payload = read(key);
      if (payload !== undefined) yield [key.slice(model.length + 1), payload];
    }
  };
  const revokeByGrantId = (grantId: string): void => {
    for (const [key, record] of records) {
      if (record.payload['grantId'] === grantId) records.delete(key);
    }
    records.delete(`Grant:${grantId}`);
  };
  const adapterFor = (model: string) => ({
    upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
      const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
      records.set(`${model}:${id}`, { payload, expiresAt });
      return Promise.resolve();
    },
    find(id: string): Promise<Record<string, unknown> | undefined> {
      const key = `${model}:${id}`;
      const payload = read(key);
      const firstUse = reusable.get(key);
      if (payload !== undefined && firstUse !== undefined) {
        // Seen unused until the reuse interval has passed, then as used (and reuse revokes).
        if (Date.now() / 1000 - firstUse >= refreshTokenReuseSeconds) {
          reusable.delete(key);
          payload['consumed'] = firstUse;
        }
      }
      return Promise.resolve(payload);
    },
    findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      for (const [, payload] of entries(model))
        if (payload['uid'] === uid) return Promise.resolve(payload);
      return Promise.resolve(undefined);
    },
    findByUserCode(code: string): Promise<Record<string, unknown> | undefined> {
      for (const [, payload] of entries(model)) {
        if (payload['userCode'] === code) return Promise.resolve(payload);
      }
      return Promise.resolve(undefined);
    },
    consume(id: string): Promise<void> {
      const key = `${model}:${id}`;
      const payload = read(key);
      if (payload === undefined) return Promise.resolve();
      if (model === 'RefreshToken' && refreshTokenReuseSeconds > 0) {
        if (!reusable.has(key)) reusable.set(key, Date.now() / 1000);
      } else {
        payload['consumed'] = Math.floor(Date.now() / 1000);
      }
      return Promise.resolve();
    },
    destroy(id: string): Promise<void> {
      records.delete(`${model}:${id}`);
      return Promise.resolve();
    },
    revokeByGrantId(grantId: string): Promise<void> {
      revokeByGrantId(grantId);
      return Promise.resolve();
    },
  });
  return { adapterFor, entries, revokeByGrantId };
}

async function generateSigningKey(
  alg: 'RS256' | 'ES256',
  keepKid?: string,
): Promise<{
  key: SigningKey;
  privateJwk: JWK;
}> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = keepKid ?? `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { key: { kid, alg, privateKey, publicJwk }, privateJwk };
}

const FAULT_PATHS: Readonly<Record<FaultTarget, string>> = {
  token: '/token',
  discovery: '/.well-known/openid-configuration',
  jwks: '/jwks',
  revocation: '/token/revocation',
  introspection: '/token/introspection',
  userinfo: '/me',
  par: '/request',
};

/** What {@link withLoginDetails} does to each login the sign-in form submits. */
interface LoginDetails {
  /** The account a typed name signs in as, or undefined to refuse it. */
  readonly resolveLogin: (typed: string) => string | undefined;
  readonly supported: readonly string[] | undefined;
  readonly loginTime: (() => number) | undefined;
}

/**
 * An interaction store that completes each login the development form submits: the typed name
 * resolved to an account (an unknown or malformed one refused with `access_denied`, which the
 * provider sends to the client, rather than a session naming an account that does not exist:
 * that is a 500 on this and every later visit), and an `acr` and a time (see
 * `TestProviderOptions.acrValues`, `loginTime`): the form records only the name.
 */
function withLoginDetails<
  A extends {
    upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void>;
  },
>(adapter: A, { resolveLogin, supported, loginTime }: LoginDetails): A {
  const upsert = adapter.upsert.bind(adapter);
  return Object.assign(Object.create(adapter) as A, {
    upsert: (id: string, payload: Record<string, unknown>, expiresIn?: number) => {
      const result = payload['result'] as { login?: Record<string, unknown> } | undefined;
      const login = result?.login;
      if (login !== undefined && login['ts'] === undefined && login['resolved'] !== true) {
        const typed = login['accountId'];
        const accountId = resolveLogin(typeof typed === 'string' ? typed : '');
        if (accountId === undefined) {
          payload['result'] = {
            error: 'access_denied',
            error_description: 'unknown login name',
          };
          return upsert(id, payload, expiresIn);
        }
        login['accountId'] = accountId;
        login['resolved'] = true;
        if (loginTime !== undefined) login['ts'] = loginTime();
        if (supported !== undefined) {
          const params = payload['params'] as { acr_values?: unknown } | undefined;
          const requested =
            typeof params?.acr_values === 'string' ? params.acr_values.split(' ') : [];
          login['acr'] = requested.find((acr) => supported.includes(acr)) ?? supported[0];
          login['amr'] = ['pwd'];
        }
      }
      return upsert(id, payload, expiresIn);
    },
  });
}

/**
 * The provider's error page with a way out: what went wrong, and a link to start again at the
 * app (which sends the browser back to a fresh sign-in). Values are escaped; the page links
 * nowhere else.
 */
function errorPageStartingAgain(startAgainUrl: string) {
  return (
    ctx: { type: string; body: string },
    out: Readonly<Record<string, unknown>>,
  ): Promise<void> => {
    const details = Object.entries(out)
      .map(([key, value]) => `<p><code>${escapeHtml(key)}</code>: ${escapeHtml(String(value))}</p>`)
      .join('');
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign-in could not continue</title></head><body><h1>Sign-in could not continue</h1>${details}<p>This happens when a sign-in page is used twice or too late. <a id="start-again" href="${escapeHtml(startAgainUrl)}">Start again</a></p></body></html>`;
    return Promise.resolve();
  };
}

function defaultClaims(users: readonly TestUser[]): Record<string, string[]> {
  const extra = new Set<string>();
  for (const user of users) {
    for (const name of Object.keys({ ...user.extraClaims, ...user.userinfoClaims }))
      extra.add(name);
  }
  return {
    openid: ['sub', ...extra],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
    groups: ['groups'],
  };
}

function claimsOf(user: TestUser): Record<string, unknown> {
  const claims: Record<string, unknown> = { ...user.extraClaims, sub: user.sub };
  if (user.email !== undefined) claims['email'] = user.email;
  if (user.emailVerified !== undefined) claims['email_verified'] = user.emailVerified;
  if (user.name !== undefined) claims['name'] = user.name;
  if (user.preferredUsername !== undefined) claims['preferred_username'] = user.preferredUsername;
  if (user.groups !== undefined) claims['groups'] = [...user.groups];
  return claims;
}

/** The header carrying the client certificate to a provider with `mtls` (URL-encoded PEM). */
export const CLIENT_CERT_HEADER = 'x-client-cert';

function clientMetadata(client: TestClient): Record<string, unknown> {
  const method =
    client.authMethod ?? (client.clientSecret === undefined ? 'none' : 'client_secret_basic');
  const metadata: Record<string, unknown> = {
    client_id: client.clientId,
    redirect_uris: [...client.redirectUris],
    post_logout_redirect_uris: [...(client.postLogoutRedirectUris ?? [])],
    grant_types: [...(client.grantTypes ?? ['authorization_code', 'refresh_token'])],
    response_types: client.grantTypes?.includes('authorization_code') === false ? [] : ['code'],
    token_endpoint_auth_method: method,
    id_token_signed_response_alg: client.idTokenSignedResponseAlg ?? 'RS256',
  };
  if (client.clientSecret !== undefined) metadata['client_secret'] = client.clientSecret;
  if (client.certificateBound === true) {
    metadata['tls_client_certificate_bound_access_tokens'] = true;
  }
  if (client.publicJwk !== undefined) metadata['jwks'] = { keys: [client.publicJwk] };
  if (client.requirePushedAuthorizationRequests === true) {
    metadata['require_pushed_authorization_requests'] = true;
  }
  if (client.backchannelLogoutUri !== undefined) {
    metadata['backchannel_logout_uri'] = client.backchannelLogoutUri;
    metadata['backchannel_logout_session_required'] = true;
  }
  return metadata;
}

/**
 * Starts a development OpenID Provider on loopback (issuer `http://127.0.0.1:<port>` unless
 * `host` says otherwise), with refresh-token rotation on (reuse of a rotated token is `invalid_grant` and revokes the grant),
 * PKCE S256 required, the provider's own sign-in/consent forms, revocation, introspection,
 * RP-initiated and back-channel logout, client credentials and resource indicators.
 */
export async function startTestProvider(options: TestProviderOptions): Promise<TestProvider> {
  // Loaded on demand so that nothing outside tests and the demo pulls in the provider.
  const specifier = 'oidc-provider';
  const loaded: unknown = await import(specifier);
  const mod = loaded as ProviderModule;

  const users = new Map((options.users ?? [DEMO_USER]).map((u) => [u.sub, u]));
  const [rs, es] = await Promise.all([generateSigningKey('RS256'), generateSigningKey('ES256')]);
  const storage = createStorage(options.refreshTokenReuseSeconds);
  const autoConsent = options.autoConsent ?? true;
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 300;
  const resourceScope = options.resourceScope ?? 'api:read api:write';
  const resources = new Set([
    ...(options.defaultResource === undefined ? [] : [options.defaultResource]),
    ...(options.resources ?? []),
  ]);
  const claims = options.claims ?? defaultClaims([...users.values()]);

  const emptyCounters = () => ({
    grants: {} as Record<string, Record<string, number>>,
    tokenRequests: 0,
    parRequests: 0,
    discovery: 0,
    jwks: 0,
    introspection: 0,
    revocation: 0,
    endSession: 0,
    backchannelLogout: { success: 0, error: 0 },
    faultsInjected: 0,
  });
  let counts = emptyCounters();
  const countGrant = (grantType: unknown, outcome: string) => {
    const type = typeof grantType === 'string' ? grantType : 'unknown';
    const byOutcome = (counts.grants[type] ??= {});
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
  };
  let faults: { fault: Fault; remaining: number }[] = [];
  let withheldIdTokens = 0;
  let lastBackchannelError: string | undefined;

  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${options.issuerPort ?? port}`;

  /**
   * The account a submitted login name signs in as, made up for an unknown name with
   * `anyLogin`; undefined when the name is refused. Reported to `onLogin` either way.
   */
  const madeUp: string[] = [];
  const resolveLogin = (typed: string): string | undefined => {
    const accountId = loginAccountId(typed);
    const known =
      accountId === undefined
        ? undefined
        : users.has(typed)
          ? typed
          : [...users.keys()].find((sub) => loginAccountId(sub) === accountId);
    let outcome: ProviderLogin['outcome'] = known === undefined ? 'refused' : 'known';
    if (known === undefined && accountId !== undefined && options.anyLogin === true) {
      users.set(accountId, userForLogin(accountId));
      madeUp.push(accountId);
      if (madeUp.length > MAX_MADE_UP_USERS) users.delete(madeUp.shift() ?? '');
      outcome = 'new';
    }
    const signedInAs = outcome === 'known' ? known : outcome === 'new' ? accountId : undefined;
    options.onLogin?.({
      login: typed.slice(0, 100),
      outcome,
      ...(signedInAs === undefined ? {} : { accountId: signedInAs }),
    });
    return signedInAs;
  };

  const cookieKeys = [randomBytes(32).toString('base64url')];
  // A fresh object per instance: the provider takes ownership of the configuration it is given.
  const configurationFor = (signing: readonly JWK[]) => ({
    adapter: (model: string) =>
      model === 'Interaction'
        ? withLoginDetails(storage.adapterFor(model), {
            resolveLogin,
            supported: options.acrValues,
            loginTime: options.loginTime,
          })
        : storage.adapterFor(model),
    ...(options.startAgainUrl === undefined
      ? {}
      : { renderError: errorPageStartingAgain(options.startAgainUrl) }),
    ...(options.acrValues === undefined ? {} : { acrValues: [...options.acrValues] }),
    clients: options.clients.map(clientMetadata),
    jwks: { keys: signing.map((jwk) => ({ ...jwk })) },
    cookies: { keys: [...cookieKeys] },
    claims,
    scopes: ['openid', 'offline_access', ...Object.keys(claims).filter((s) => s !== 'openid')],
    // Release scope claims in the ID token of the code flow too, as most IdPs do.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      IdToken: options.idTokenTtlSeconds ?? 3600,
      RefreshToken: options.refreshTokenTtlSeconds ?? 14 * 24 * 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    issueRefreshToken: (
      _ctx: unknown,
      client: { grantTypeAllowed(type: string): boolean },
      code: { scopes: Set<string> },
    ) =>
      Promise.resolve(
        client.grantTypeAllowed('refresh_token') &&
          (options.refreshTokenPolicy !== 'offline_access' || code.scopes.has('offline_access')),
      ),
    findAccount: (_ctx: unknown, sub: string) => {
      const user = users.get(sub);
      if (user === undefined) return Promise.resolve(undefined);
      return Promise.resolve({
        accountId: sub,
        claims: (use: string) =>
          Promise.resolve(
            use === 'userinfo' ? { ...user.userinfoClaims, ...claimsOf(user) } : claimsOf(user),
          ),
      });
    },
    extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) => {
      const user = token.accountId === undefined ? undefined : users.get(token.accountId);
      return Promise.resolve(
        user?.accessTokenClaims === undefined ? {} : { ...user.accessTokenClaims },
      );
    },
    loadExistingGrant: async (ctx: OidcContext) => {
      const { oidc } = ctx;
      const grantId =
        oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId === undefined ? undefined : await oidc.provider.Grant.find(grantId);
      if (!autoConsent || oidc.account === undefined) return grant;
      grant ??= new oidc.provider.Grant({
        accountId: oidc.account.accountId,
        clientId: oidc.client.clientId,
      });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      for (const [indicator, resourceServer] of Object.entries(oidc.resourceServers)) {
        grant.addResourceScope(indicator, [...resourceServer.scopes].join(' '));
      }
      await grant.save();
      return grant;
    },
    // The provider's outbound fetch refuses special-use addresses (SSRF protection); the
    // back-channel logout receivers of a test rig are all on loopback, so drop that dispatcher.
    fetch: (url: string, init: RequestInit & { dispatcher?: unknown }) => {
      const rest = { ...init };
      delete rest.dispatcher;
      return fetch(url, rest);
    },
    ...(options.idTokenSigningAlgs === undefined
      ? {}
      : { enabledJWA: { idTokenSigningAlgValues: [...options.idTokenSigningAlgs] } }),
    features: {
      devInteractions: { enabled: true },
      dPoP: { enabled: options.dpop ?? false },
      ...(options.mtls === true
        ? {
            mTLS: {
              enabled: true,
              certificateBoundAccessTokens: true,
              getCertificate: (ctx: { get(name: string): string }) => {
                const value = ctx.get(CLIENT_CERT_HEADER);
                return value === '' ? undefined : decodeURIComponent(value);
              },
            },
          }
        : {}),
      pushedAuthorizationRequests: {
        enabled: (options.par ?? 'on') !== 'off',
        requirePushedAuthorizationRequests: options.par === 'required',
      },
      revocation: { enabled: true },
      introspection: { enabled: true },
      rpInitiatedLogout: { enabled: options.rpInitiatedLogout ?? true },
      backchannelLogout: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string) =>
          Promise.resolve(oneOf ?? options.defaultResource),
        useGrantedResource: () => Promise.resolve(true),
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (!resources.has(indicator)) {
            return Promise.reject(new mod.errors.InvalidTarget('unknown resource indicator'));
          }
          return Promise.resolve({
            scope: resourceScope,
            audience: indicator,
            accessTokenTTL: accessTokenTtl,
            accessTokenFormat: options.accessTokenFormat ?? 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          });
        },
      },
    },
  });

  /** A provider instance signing with `signing`; state lives in `storage`, so instances can be swapped. */
  const buildHandler = (signing: readonly JWK[]) => {
    const provider = new mod.default(issuer, configurationFor(signing));
    provider.use(async (ctx, next) => {
      await next();
      const { body } = ctx;
      if (
        withheldIdTokens === 0 ||
        ctx.path !== FAULT_PATHS.token ||
        ctx.oidc?.params?.['grant_type'] !== 'refresh_token' ||
        typeof body !== 'object' ||
        body === null ||
        !('id_token' in body)
      ) {
        return;
      }
      withheldIdTokens -= 1;
      const answer = { ...(body as Record<string, unknown>) };
      delete answer['id_token'];
      ctx.body = answer;
    });
    provider.on('grant.success', (ctx) => {
      countGrant((ctx as OidcContext).oidc.params?.['grant_type'], 'success');
    });
    provider.on('grant.error', (ctx, err) => {
      const error = (err as { error?: unknown }).error;
      countGrant(
        (ctx as OidcContext).oidc.params?.['grant_type'],
        typeof error === 'string' ? error : 'server_error',
      );
    });
    provider.on('backchannel.success', () => {
      counts.backchannelLogout.success += 1;
    });
    provider.on('backchannel.error', (_ctx, err) => {
      counts.backchannelLogout.error += 1;
      lastBackchannelError = err instanceof Error ? err.message : String(err);
    });
    return provider.callback();
  };
  let handle = buildHandler([rs.privateJwk, es.privateJwk]);

  const takeFault = (path: string): Fault | undefined => {
    const entry = faults.find((f) => FAULT_PATHS[f.fault.target] === path && f.remaining > 0);
    if (entry === undefined) return undefined;
    entry.remaining -= 1;
    counts.faultsInjected += 1;
    return entry.fault;
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (path === FAULT_PATHS.discovery) counts.discovery += 1;
    else if (path === FAULT_PATHS.jwks) counts.jwks += 1;
    else if (path === FAULT_PATHS.introspection) counts.introspection += 1;
    else if (path === FAULT_PATHS.revocation) counts.revocation += 1;
    else if (path === FAULT_PATHS.token && req.method === 'POST') counts.tokenRequests += 1;
    else if (path === FAULT_PATHS.par && req.method === 'POST') counts.parRequests += 1;
    else if (path.startsWith('/session/end')) counts.endSession += 1;

    const fault = takeFault(path);
    if (fault === undefined) {
      handle(req, res);
      return;
    }
    setTimeout(() => {
      if (fault.status === undefined) {
        handle(req, res);
        return;
      }
      if (fault.reply !== undefined) {
        res.writeHead(fault.status, { 'content-type': fault.reply.contentType });
        if (fault.reply.chunked === true) {
          for (let at = 0; at < fault.reply.body.length; at += 4096) {
            res.write(fault.reply.body.slice(at, at + 4096));
          }
          res.end();
        } else {
          res.end(fault.reply.body);
        }
      } else if (fault.body === 'empty') {
        res.writeHead(fault.status);
        res.end();
      } else if (fault.body === 'html') {
        res.writeHead(fault.status, { 'content-type': 'text/html' });
        res.end('<html><body><h1>Bad Gateway</h1></body></html>');
      } else {
        res.writeHead(fault.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'server_error', error_description: 'injected fault' }));
      }
    }, fault.latencyMs ?? 0);
  });

  let listening = true;
  const stop = async () => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  const start = async () => {
    if (listening) return;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    listening = true;
  };

  const keys = { RS256: rs.key, ES256: es.key };
  let privateJwks = { RS256: rs.privateJwk, ES256: es.privateJwk };
  return {
    issuer,
    port,
    keys,
    rotateSigningKey: async (rotation = {}) => {
      const alg = rotation.alg ?? 'RS256';
      const next = await generateSigningKey(
        alg,
        rotation.keepKid === true ? keys[alg].kid : undefined,
      );
      keys[alg] = next.key;
      privateJwks = { ...privateJwks, [alg]: next.privateJwk };
      handle = buildHandler([privateJwks.RS256, privateJwks.ES256]);
      return next.key;
    },
    signJwt: (payload, signOptions) => {
      const key = keys[signOptions?.alg ?? 'RS256'];
      return new SignJWT({ iss: issuer, iat: Math.floor(Date.now() / 1000), ...payload })
        .setProtectedHeader({
          alg: key.alg,
          kid: signOptions?.kid ?? key.kid,
          ...(signOptions?.typ === undefined ? {} : { typ: signOptions.typ }),
        })
        .sign(key.privateKey);
    },
    counters: () => structuredClone(counts),
    lastBackchannelError: () => lastBackchannelError,
    resetCounters: () => {
      counts = emptyCounters();
    },
    injectFault: (fault) => {
      faults.push({ fault, remaining: fault.count ?? Number.POSITIVE_INFINITY });
    },
    clearFaults: () => {
      faults = [];
    },
    withholdRefreshIdTokens: (count) => {
      withheldIdTokens = count;
    },
    revokeGrant: (grantId) => {
      storage.revokeByGrantId(grantId);
      return Promise.resolve();
    },
    grantIds: (accountId, clientId) => {
      const ids: string[] = [];
      for (const [id, grant] of storage.entries('Grant')) {
        if (grant['accountId'] !== accountId) continue;
        if (clientId !== undefined && grant['clientId'] !== clientId) continue;
        ids.push(id);
      }
      return ids;
    },
    findSessions: (filter = {}) => {
      const found: ProviderSession[] = [];
      for (const [, session] of storage.entries('Session')) {
        const authorizations = (session['authorizations'] ?? {}) as Record<
          string,
          { sid?: string; grantId?: string }
        >;
        const clients = Object.entries(authorizations).map(([clientId, a]) => ({
          clientId,
          sid: a.sid ?? '',
          grantId: a.grantId,
        }));
        const accountId =
          typeof session['accountId'] === 'string' ? session['accountId'] : undefined;
        if (filter.accountId !== undefined && accountId !== filter.accountId) continue;
        if (filter.sid !== undefined && !clients.some((c) => c.sid === filter.sid)) continue;
        found.push({ uid: String(session['uid']), accountId, clients });
      }
      return found;
    },
    storedTokens: (model) => [...storage.entries(model)].map(([id]) => id),
    stop,
    start,
    close: stop,
  };
}
