/** One app's OpenID Connect client at a shared {@link Provider}: authorization URL, code exchange, refresh, revocation, end-session, logout tokens. */
import { RESERVED_AUTH_PARAMS, type OidcConfig } from '../config/schema.ts';
import {
  authorizationCodeGrant,
  buildAuthorizationUrl,
  buildEndSessionUrl,
  clockTolerance,
  customFetch,
  refreshTokenGrant,
  tokenRevocation,
} from 'openid-client';
import type { ClientMetadata, Configuration, TokenEndpointResponse } from 'openid-client';
import {
  ConfigError,
  IdpError,
  IdpUnavailableError,
  StateMismatchError,
  TokenInvalidError,
} from '../errors.ts';
import type { ConfigProblem, IdpEndpoint } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { statesEqual } from '../session/login-state.ts';
import { basicEncodingHint, prepareClientAuth } from './client-authentication.ts';
import { AuthorizationLocations, type PerLoginValues } from './authorization-location.ts';
import { verifyIdToken } from './id-token.ts';
import {
  DEFAULT_CLAIM_SOURCES,
  accessTokenClaims,
  fetchUserinfo,
  mergeClaims,
  type ClaimSource,
  type SourcedClaims,
} from './claim-sources.ts';
import { isKeyFailure } from './provider-keys.ts';
import type { IdTokenClaims, TenantIssuer, TokenPolicy } from './id-token.ts';
import type { IdpFetch } from './idp-fetch.ts';
import { isRecord } from '../is-record.ts';
import { verifyLogoutToken } from './logout-token.ts';
import type { LogoutTokenClaims } from './logout-token.ts';
import type { ProviderKeyGetter } from './provider-keys.ts';
import { TENANT_PLACEHOLDER, validateIssuer } from './provider.ts';
import {
  idTokenAlgMismatch,
  parMismatch,
  pushesAuthorization,
  sharedIdTokenAlgs,
} from './provider-checks.ts';
import { pushAuthorizationRequest } from './pushed-authorization.ts';
import type { Provider, ProviderStatus } from './provider.ts';

/**
 * The resolved `oidc` block of one app (the fields this client reads; `issuer` is the one ID
 * tokens must carry exactly), and the app's name for log lines and status (default the client id).
 */
export type OidcClientOptions = Pick<
  OidcConfig,
  | 'issuer'
  | 'clientSecret'
  | 'clientAuth'
  | 'privateKey'
  | 'scopes'
  | 'extraAuthParams'
  | 'clockSkew'
> &
  Partial<Pick<OidcConfig, 'provider' | 'tenants' | 'basicAuthEncoding' | 'par'>> & {
    /** The client of the app's browser login (an API-only app has none, and no client here). */
    readonly clientId: string;
    /** Where session claims come from (`oidc.claimsFrom`); default {@link DEFAULT_CLAIM_SOURCES}. */
    readonly claimsFrom?: readonly ClaimSource[];
    /** Accepted ID-token (and logout-token) signing algorithms; checked here again: asymmetric only. */
    readonly idTokenAlgs: readonly string[];
    readonly appName?: string;
  };

/** Oldest logout token accepted, in milliseconds (Back-Channel Logout 1.0 §2.6 leaves it to us). */
export const LOGOUT_TOKEN_MAX_AGE_MS = 600_000;

export interface OidcClientDeps {
  /** Current time in milliseconds. */
  readonly now: () => number;
  readonly logger?: Logger;
}

export interface AuthorizationUrlParams extends PerLoginValues {
  /** Per-request extras (e.g. `login_hint`), merged over the configured ones; ours still win. */
  readonly extraAuthParams?: Readonly<Record<string, string>>;
}

/** Tokens from the token endpoint. */
export interface TokenSet {
  readonly accessToken: string;
  readonly refreshToken?: string;
  readonly idToken: string;
  /** When the access token expires, ms since the epoch (`expires_in`, else the ID token's `exp`). */
  readonly expiresAt: number;
}

export interface ExchangeCodeParams {
  /** The query parameters of the callback the browser requested. */
  readonly params: URLSearchParams;
  /** The redirect URI sent in the authorization request. */
  readonly redirectUri: string;
  readonly codeVerifier: string;
  readonly expectedState: string;
  readonly expectedNonce: string;
}

export interface ExchangeResult {
  readonly tokens: TokenSet;
  /** The validated ID token's claims. */
  readonly claims: IdTokenClaims;
  /** What the session keeps: the claims of every `claimsFrom` source, merged. */
  readonly sessionClaims: Record<string, unknown>;
}

export interface RefreshOptions {
  /** The session's `sub`: a refreshed ID token and a userinfo answer must carry it. */
  readonly expectedSubject?: string;
  /** The session's claims, the base a refresh's sources are merged over. */
  readonly currentClaims?: Readonly<Record<string, unknown>>;
}

export interface RefreshResult {
  readonly tokens: {
    readonly accessToken: string;
    /** Present when the provider rotated it (or re-sent it); else keep the old one. */
    readonly refreshToken?: string;
    /** Present when a new ID token came back. */
    readonly idToken?: string;
    /** ms since the epoch; undefined when neither `expires_in` nor a new ID token says. */
    readonly expiresAt?: number;
  };
  /**
   * The session's claims anew, when a new ID token came back or `claimsFrom` names another
   * source: the sources merged over the session's claims (see `mergeClaims`).
   */
  readonly claims?: Record<string, unknown>;
}

export interface EndSessionParams {
  readonly idTokenHint?: string;
  readonly postLogoutRedirectUri?: string;
  readonly state?: string;
}

/** The per-app OpenID Connect client. */
export interface OidcClient {
  readonly issuer: string;
  readonly clientId: string;
  /** Resolves once the provider's discovery has answered; rejects only if it is closed first. */
  readonly ready: Promise<void>;
  /** Discovery state of the app's provider, for `/readyz`. */
  status(): ProviderStatus & { readonly app: string };
  /** The provider's JWKS key getter for `jose.jwtVerify` (bearer tokens). Rejects before ready. */
  readonly getKey: ProviderKeyGetter;
  /**
   * The authorization request URL, built without a `URL` per call: the 302 of every
   * unauthenticated navigation carries it.
   */
  authorizationLocation(params: AuthorizationUrlParams): string;
  /**
   * Whether logins push their request first (RFC 9126, `oidc.par`), as the provider's discovery
   * and the setting decide; false until discovery has answered.
   */
  pushesAuthorization(): boolean;
  /**
   * Pushes the authorization request and resolves to the URL to redirect to, with only
   * `client_id` and `request_uri`. Rejects with `IdpUnavailableError` (the provider failed, or
   * answered what no redirect can carry) or `IdpError` (it refused the request).
   */
  pushAuthorization(params: AuthorizationUrlParams): Promise<string>;
  exchangeCode(params: ExchangeCodeParams): Promise<ExchangeResult>;
  refresh(refreshToken: string, options?: RefreshOptions): Promise<RefreshResult>;
  /** RFC 7009; resolves false when the provider has no revocation endpoint. */
  revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<boolean>;
  /** RP-initiated logout URL with `client_id`; null when the provider has no end-session endpoint. */
  endSessionUrl(params: EndSessionParams): URL | null;
  verifyLogoutToken(token: string): Promise<LogoutTokenClaims>;
}

function validateOptions(options: OidcClientOptions): ConfigProblem[] {
  const problems: ConfigProblem[] = validateIssuer(options.issuer);
  if (options.clientId === '') problems.push({ path: 'oidc.clientId', message: 'required' });
  if (options.idTokenAlgs.length === 0) {
    problems.push({ path: 'oidc.idTokenAlgs', message: 'must list at least one algorithm' });
  }
  for (const alg of options.idTokenAlgs) {
    if (alg === 'none' || alg.startsWith('HS')) {
      problems.push({ path: 'oidc.idTokenAlgs', message: `${alg} is not an asymmetric algorithm` });
    }
  }
  if (!Number.isFinite(options.clockSkew) || options.clockSkew < 0) {
    problems.push({ path: 'oidc.clockSkew', message: 'must be a non-negative duration' });
  }
  return problems;
}

/**
 * The algorithms a logout token may be signed with: those the provider announces for ID tokens
 * (`id_token_signing_alg_values_supported`) that `oidc.idTokenAlgs` also allows. Back-Channel
 * Logout 1.0 §2.6 has logout tokens signed like ID tokens, so a token under any other algorithm
 * (ES256 from a provider whose ID tokens are RS256 only, with a key its JWKS holds for other
 * uses) is not one. A provider that omits the list, which Discovery §3 requires, is taken to
 * sign with RS256, the algorithm that list must include.
 */
export function logoutTokenAlgorithms(
  announced: readonly string[] | undefined,
  allowed: readonly string[],
): string[] {
  return sharedIdTokenAlgs(announced, allowed);
}

/** Where an ID token taken out of a token response waits for its own verification. */
interface HeldIdToken {
  idToken?: string;
}

/**
 * A fetch that takes the ID token out of a successful token response before openid-client sees
 * it, into `held`: openid-client compares its `iss` with the discovered issuer, which for a
 * multi-tenant issuer is the `{tenantid}` template no token carries. {@link verifyIdToken}
 * then checks it in full, the issuer against the template and the token's own `tid`.
 */
function holdingIdToken(fetch: IdpFetch, held: HeldIdToken): IdpFetch {
  return async (url, init) => {
    const response = await fetch(url, init);
    if (response.status !== 200) return response;
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    const rebuilt = (bodyText: string) =>
      new Response(bodyText, { status: 200, statusText: response.statusText, headers });
    if (!isRecord(body) || typeof body['id_token'] !== 'string') return rebuilt(text);
    const { id_token: idToken, ...rest } = body;
    held.idToken = idToken;
    return rebuilt(JSON.stringify(rest));
  };
}

function heldIdToken(held: HeldIdToken): string | undefined {
  return held.idToken;
}

/**
 * Microsoft Entra ID sends no `email_verified`; its `xms_edov` claim says whether the tenant
 * verified the email's domain ownership, which is what `email_verified: true` has to mean here
 * (https://learn.microsoft.com/en-us/entra/identity-platform/optional-claims-reference).
 */
function entraEmailVerified(claims: IdTokenClaims): IdTokenClaims {
  if (Object.hasOwn(claims, 'email_verified') || claims['xms_edov'] !== true) return claims;
  return { ...claims, email_verified: true };
}

/**
 * The logout address of a provider that announces no `end_session_endpoint`, or `null`:
 * - Amazon Cognito: `/logout` on the user-pool domain (the authorization endpoint's origin) with
 *   `client_id` and `logout_uri`, which Cognito requires
 *   (https://docs.aws.amazon.com/cognito/latest/developerguide/logout-endpoint.html);
 * - Auth0: `/v2/logout` on the tenant with `client_id` and `returnTo`
 *   (https://auth0.com/docs/api/authentication/logout/auth-0-logout).
 */
function providerLogoutUrl(
  profile: string,
  serverMetadata: { readonly issuer: string; readonly authorization_endpoint?: string },
  clientId: string,
  params: EndSessionParams,
): URL | null {
  const returnTo = params.postLogoutRedirectUri;
  if (profile === 'cognito') {
    const authorize = URL.parse(serverMetadata.authorization_endpoint ?? '');
    if (authorize === null || returnTo === undefined) return null;
    const url = new URL('/logout', authorize.origin);
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('logout_uri', returnTo);
    return url;
  }
  if (profile === 'auth0') {
    const issuer = URL.parse(serverMetadata.issuer);
    if (issuer === null) return null;
    const url = new URL('/v2/logout', issuer.origin);
    url.searchParams.set('client_id', clientId);
    if (returnTo !== undefined) url.searchParams.set('returnTo', returnTo);
    return url;
  }
  return null;
}

/**
 * Builds the client of one app at `provider`. Throws {@link ConfigError} for options that can
 * never work (http issuer off loopback, missing secret or key, empty alg list).
 */
export function createOidcClient(
  provider: Provider,
  options: OidcClientOptions,
  deps: OidcClientDeps,
): OidcClient {
  const auth = prepareClientAuth(options);
  const problems = [...validateOptions(options), ...('problems' in auth ? auth.problems : [])];
  if (problems.length > 0 || !('prepared' in auth)) throw new ConfigError(problems);

  const app = options.appName ?? options.clientId;
  const log = deps.logger?.child({ component: 'oidc', app });
  const scope = [...new Set(['openid', ...options.scopes])].join(' ');
  const configuredExtras = Object.entries(options.extraAuthParams).filter(
    ([name]) => !RESERVED_AUTH_PARAMS.has(name),
  );
  const profile = options.provider ?? 'generic';
  const parMode = options.par ?? 'auto';
  let tokenPolicy: TokenPolicy = {
    issuer: options.issuer,
    clientId: options.clientId,
    algorithms: [...options.idTokenAlgs],
    clockSkewMs: options.clockSkew,
    now: deps.now,
  };
  const claimSources = options.claimsFrom ?? DEFAULT_CLAIM_SOURCES;
  const extraSources = claimSources.some((source) => source !== 'id_token');
  /** Set once discovery found a `{tenantid}` issuer (Entra profile only). */
  let tenantIssuer: TenantIssuer | undefined;
  const metadata: Partial<ClientMetadata> = {
    [clockTolerance]: Math.ceil(options.clockSkew / 1000),
    ...(options.clientSecret === undefined ? {} : { client_secret: options.clientSecret }),
  };

  let configured:
    | {
        config: Configuration;
        /** The same client with the refresh-grant deadline: a grant runs to completion. */
        grantConfig: Configuration;
        /** The algorithms logout tokens may be signed with (see {@link logoutTokenAlgorithms}). */
        logoutAlgs: readonly string[];
        /**
         * Why no login can work with the provider: no ID-token algorithm in common, or
         * `oidc.par` at odds with what its discovery says of pushed authorization requests.
         */
        unusable: string | undefined;
        /** Logins push their request first (RFC 9126). */
        pushes: boolean;
        registration: Parameters<Provider['configure']>[0];
      }
    | undefined;
  const ready = provider.ready.then(async () => {
    const registration = { clientId: options.clientId, metadata, auth: await auth.prepared.load() };
    const config = provider.configure(registration, 'discovery');
    const grantConfig = provider.configure(registration, 'discovery', 'grant');
    const discoveredIssuer = config.serverMetadata().issuer;
    if (profile === 'entra' && discoveredIssuer.includes(TENANT_PLACEHOLDER)) {
      tenantIssuer = { template: discoveredIssuer, tenants: options.tenants ?? [] };
      tokenPolicy = { ...tokenPolicy, tenantIssuer };
    }
    const logoutAlgs = logoutTokenAlgorithms(
      config.serverMetadata().id_token_signing_alg_values_supported,
      options.idTokenAlgs,
    );
    const algs = idTokenAlgMismatch(
      config.serverMetadata().id_token_signing_alg_values_supported,
      options.idTokenAlgs,
    );
    if (algs !== undefined) {
      // Not ready (`/readyz` says why): sending browsers to log in would end on an error page.
      log?.error({ issuer: options.issuer, error: algs }, 'app not ready: ID-token algorithms');
    }
    const par = parMismatch(config.serverMetadata(), parMode);
    if (par !== undefined) {
      log?.error({ issuer: options.issuer, error: par }, 'app not ready: oidc.par');
    }
    const pushes = pushesAuthorization(config.serverMetadata(), parMode);
    configured = { config, grantConfig, logoutAlgs, unusable: algs ?? par, registration, pushes };
  });
  // Nobody may be awaiting `ready` when the provider is closed early; that is not a crash.
  ready.catch(() => undefined);

  const requireConfigured = (endpoint: IdpEndpoint) => {
    if (configured !== undefined) return configured;
    provider.metadata(endpoint);
    // Discovery answered and the client's key is still being imported.
    throw new IdpUnavailableError(endpoint, 'discovery_pending');
  };

  /** The authorization request URL: configured extras, per-request extras, then ours. */
  const buildLoginUrl = (config: Configuration, params: AuthorizationUrlParams): URL => {
    const query: Record<string, string> = Object.fromEntries(configuredExtras);
    for (const [name, value] of Object.entries(params.extraAuthParams ?? {})) {
      if (!RESERVED_AUTH_PARAMS.has(name)) query[name] = value;
    }
    Object.assign(query, {
      client_id: options.clientId,
      response_type: 'code',
      redirect_uri: params.redirectUri,
      scope,
      state: params.state,
      nonce: params.nonce,
      code_challenge: params.codeChallenge,
      code_challenge_method: 'S256',
    });
    return buildAuthorizationUrl(config, query);
  };

  const encodingHint = options.basicAuthEncoding === 'raw' ? undefined : basicEncodingHint(options);
  /**
   * A token endpoint refusing the client's own credentials is a configuration problem, not the
   * user's: the error carries the Basic-encoding hint when it may apply. A refresh logs one
   * warning line here; a code exchange does not, since the callback logs its failure once, with
   * the request id and this hint (`loggedByCaller`).
   */
  const explainRefusedClient = (error: unknown, loggedByCaller = false): never => {
    if (
      error instanceof IdpError &&
      (error.oauthError === 'invalid_client' || error.httpStatus === 401)
    ) {
      if (!loggedByCaller)
        log?.warn(
          {
            issuer: options.issuer,
            error: error.message,
            ...(encodingHint === undefined ? {} : { hint: encodingHint }),
          },
          'the token endpoint refused the client credentials',
        );
      if (encodingHint !== undefined && error.hint === undefined) {
        throw new IdpError(error.endpoint, error.oauthError, {
          ...(error.oauthErrorDescription === undefined
            ? {}
            : { description: error.oauthErrorDescription }),
          ...(error.httpStatus === undefined ? {} : { httpStatus: error.httpStatus }),
          hint: encodingHint,
          cause: error,
        });
      }
    }
    throw error;
  };

  /** Authorization URLs as strings, built once the client is configured. */
  let locations: AuthorizationLocations | undefined;

  const expiresAtFrom = (
    response: TokenEndpointResponse,
    claims: IdTokenClaims | undefined,
  ): number | undefined => {
    if (typeof response.expires_in === 'number') return deps.now() + response.expires_in * 1000;
    return claims === undefined ? undefined : claims.exp * 1000;
  };

  /**
   * The session's claims from every configured source. `idClaims` stands for the ID token (the
   * session's claims under a new ID token's, after a refresh). A userinfo outage after a refresh
   * (`onRefresh`) keeps the claims userinfo gave before: the rotated tokens must not be lost.
   */
  const collectClaims = async (
    idClaims: Readonly<Record<string, unknown>>,
    accessToken: string,
    onRefresh: boolean,
  ): Promise<Record<string, unknown>> => {
    const sources: SourcedClaims[] = [];
    for (const source of claimSources) {
      if (source === 'id_token') {
        sources.push({ source, claims: idClaims });
      } else if (source === 'access_token') {
        const claims = await accessTokenClaims(accessToken, provider.getKey, tokenPolicy);
        if (claims !== undefined) sources.push({ source, claims });
      } else {
        const claims = await userinfoClaims(idClaims, accessToken, onRefresh);
        if (claims !== undefined) sources.push({ source, claims });
      }
    }
    return mergeClaims(idClaims, sources);
  };

  const userinfoClaims = async (
    idClaims: Readonly<Record<string, unknown>>,
    accessToken: string,
    onRefresh: boolean,
  ): Promise<Record<string, unknown> | undefined> => {
    const { config } = requireConfigured('userinfo');
    const endpoint = config.serverMetadata().userinfo_endpoint;
    const fetch = config[customFetch];
    if (endpoint === undefined || fetch === undefined) {
      throw new IdpUnavailableError('userinfo', 'invalid_response', {
        detail: 'oidc.claimsFrom names userinfo and the provider announces no userinfo_endpoint',
      });
    }
    try {
      return await provider.call('userinfo', 'userinfo', () =>
        fetchUserinfo({
          endpoint,
          accessToken,
          expectedSubject: String(idClaims['sub']),
          fetch,
          getKey: provider.getKey,
          policy: tokenPolicy,
        }),
      );
    } catch (err) {
      if (!onRefresh || !(err instanceof IdpUnavailableError)) throw err;
      log?.warn(
        { endpoint: 'userinfo', error: err.message },
        'userinfo unavailable after a refresh: the session keeps the claims it had',
      );
      return undefined;
    }
  };

  return {
    issuer: options.issuer,
    clientId: options.clientId,
    ready,
    getKey: provider.getKey,

    status: () => {
      const status = provider.status();
      if (status.state === 'ready' && configured?.unusable !== undefined) {
        return { app, ...status, state: 'misconfigured', lastError: configured.unusable };
      }
      return {
        app,
        ...status,
        ...(status.state === 'ready' && configured === undefined ? { state: 'waiting' } : {}),
      };
    },

    authorizationLocation: (params) => {
      const { config } = requireConfigured('authorization');
      if (params.extraAuthParams !== undefined) return buildLoginUrl(config, params).href;
      locations ??= new AuthorizationLocations((values) => buildLoginUrl(config, values));
      return locations.location(params);
    },

    pushesAuthorization: () => configured?.pushes ?? false,

    pushAuthorization: async (params) => {
      const { config } = requireConfigured('pushed_authorization');
      const query = buildLoginUrl(config, params).searchParams;
      return await provider.call('pushed_authorization', 'pushed_authorization', () =>
        pushAuthorizationRequest(config, query),
      );
    },

    exchangeCode: async (params) => {
      const { config: sharedConfig, registration } = requireConfigured('token');
      const held: HeldIdToken = {};
      const config =
        tenantIssuer === undefined
          ? sharedConfig
          : provider.configure(registration, 'token', 'request', (f) => holdingIdToken(f, held));
      const query = params.params;
      // The browser-bound state is ours to check (CSRF); the library checks it again.
      const state = query.get('state');
      if (state === null || !statesEqual(state, params.expectedState)) {
        throw new StateMismatchError();
      }
      const currentUrl = new URL(params.redirectUri);
      currentUrl.search = query.toString();
      const response = await provider
        .call('token', 'token', () =>
          authorizationCodeGrant(config, currentUrl, {
            pkceCodeVerifier: params.codeVerifier,
            expectedState: params.expectedState,
            // A held ID token is checked below (nonce included), not by openid-client.
            ...(tenantIssuer === undefined
              ? { expectedNonce: params.expectedNonce, idTokenExpected: true }
              : {}),
          }),
        )
        .catch((error: unknown) => explainRefusedClient(error, true));
      const idToken = held.idToken ?? response.id_token;
      if (idToken === undefined) {
        throw new TokenInvalidError('id_token', 'no ID token in the token response');
      }
      let claims = await verifyIdToken(idToken, provider.getKey, tokenPolicy);
      if (claims.nonce !== params.expectedNonce) throw new TokenInvalidError('id_token', 'nonce');
      if (profile === 'entra') claims = entraEmailVerified(claims);
      const sessionClaims = await collectClaims(claims, response.access_token, false);
      return {
        sessionClaims,
        tokens: {
          accessToken: response.access_token,
          idToken,
          expiresAt: expiresAtFrom(response, claims) ?? claims.exp * 1000,
          ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
        },
        claims,
      };
    },

    refresh: async (refreshToken, refreshOptions) => {
      // The provider may rotate the refresh token however late it answers: wait for it.
      const { grantConfig: sharedGrantConfig, registration } = requireConfigured('token');
      const held: HeldIdToken = {};
      const grantConfig =
        tenantIssuer === undefined
          ? sharedGrantConfig
          : provider.configure(registration, 'token', 'grant', (f) => holdingIdToken(f, held));
      const grant = async (token: string): Promise<TokenEndpointResponse> => {
        delete held.idToken;
        const answer = await provider
          .call('token', 'token', () => refreshTokenGrant(grantConfig, token))
          .catch(explainRefusedClient);
        const idToken = heldIdToken(held);
        const { access_token, refresh_token, expires_in, token_type } = answer;
        if (idToken === undefined) return answer;
        return {
          access_token,
          token_type,
          id_token: idToken,
          ...(refresh_token === undefined ? {} : { refresh_token }),
          ...(expires_in === undefined ? {} : { expires_in }),
        };
      };
      let response = await grant(refreshToken);
      let claims: IdTokenClaims | undefined;
      if (response.id_token !== undefined) {
        try {
          claims = await verifyIdToken(response.id_token, provider.getKey, tokenPolicy);
        } catch (err) {
          // A provider that replaced its signing key may have signed this ID token with the key
          // it just dropped, while the refresh token in the same answer is already the rotated
          // one: ending the session would lose it. One more grant with it returns an ID token
          // signed with the current key, verified as strictly as the first. That answer may
          // carry no ID token (OIDC Core §12.2): a refresh like any other, the claims are kept.
          if (!(err instanceof TokenInvalidError && isKeyFailure(err.cause))) throw err;
          response = await grant(response.refresh_token ?? refreshToken);
          if (response.id_token !== undefined) {
            claims = await verifyIdToken(response.id_token, provider.getKey, tokenPolicy);
          }
        }
      }
      if (claims !== undefined) {
        if (profile === 'entra') claims = entraEmailVerified(claims);
        // OIDC Core §12.2: a refreshed ID token is about the same subject.
        const expected = refreshOptions?.expectedSubject;
        if (expected !== undefined && claims.sub !== expected) {
          throw new TokenInvalidError('id_token', 'sub changed on refresh');
        }
      }
      const expiresAt = expiresAtFrom(response, claims);
      let sessionClaims: Record<string, unknown> | undefined;
      const current = refreshOptions?.currentClaims;
      if (claims !== undefined || (extraSources && current !== undefined)) {
        const base = { ...current, ...claims };
        if (typeof base['sub'] === 'string') {
          sessionClaims = await collectClaims(base, response.access_token, true);
        }
      }
      return {
        tokens: {
          accessToken: response.access_token,
          ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
          ...(response.id_token === undefined ? {} : { idToken: response.id_token }),
          ...(expiresAt === undefined ? {} : { expiresAt }),
        },
        ...(sessionClaims === undefined ? {} : { claims: sessionClaims }),
      };
    },

    revoke: async (token, hint) => {
      const { config } = requireConfigured('revocation');
      if (config.serverMetadata().revocation_endpoint === undefined) return false;
      await provider.call('revocation', 'revocation', () =>
        tokenRevocation(config, token, { token_type_hint: hint }),
      );
      return true;
    },

    endSessionUrl: (params) => {
      const { config } = requireConfigured('discovery');
      const serverMetadata = config.serverMetadata();
      if (serverMetadata.end_session_endpoint === undefined) {
        return providerLogoutUrl(profile, serverMetadata, options.clientId, params);
      }
      const query: Record<string, string> = { client_id: options.clientId };
      if (params.idTokenHint !== undefined) query['id_token_hint'] = params.idTokenHint;
      if (params.postLogoutRedirectUri !== undefined) {
        query['post_logout_redirect_uri'] = params.postLogoutRedirectUri;
      }
      if (params.state !== undefined) query['state'] = params.state;
      return buildEndSessionUrl(config, query);
    },

    verifyLogoutToken: async (token) => {
      const { logoutAlgs } = requireConfigured('jwks');
      return verifyLogoutToken(token, provider.getKey, {
        ...tokenPolicy,
        algorithms: logoutAlgs,
        maxAgeMs: LOGOUT_TOKEN_MAX_AGE_MS,
      });
    },
  };
}
