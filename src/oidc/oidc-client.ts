/** One app's OpenID Connect client: discovery, authorization URL, code exchange, refresh, revocation, end-session, logout tokens. */
import { RESERVED_AUTH_PARAMS } from '../config/schema.ts';
import { timingSafeEqual } from 'node:crypto';
import {
  allowInsecureRequests,
  authorizationCodeGrant,
  buildAuthorizationUrl,
  buildEndSessionUrl,
  clockTolerance,
  customFetch,
  discovery,
  refreshTokenGrant,
  tokenRevocation,
} from 'openid-client';
import type { ClientMetadata, Configuration, TokenEndpointResponse } from 'openid-client';
import {
  ConfigError,
  IdpUnavailableError,
  StateMismatchError,
  TokenInvalidError,
} from '../errors.ts';
import type { ConfigProblem, IdpEndpoint } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { prepareClientAuth } from './client-authentication.ts';
import type { ClientAuthMethod } from './client-authentication.ts';
import { runUnguarded } from './idp-call-guard.ts';
import type { IdpCallGuard } from './idp-call-guard.ts';
import { AuthorizationLocations } from './authorization-location.ts';
import { createIdpFetch, isLoopbackUrl } from './idp-fetch.ts';
import { verifyIdToken } from './id-token.ts';
import type { IdTokenClaims, TokenPolicy } from './id-token.ts';
import { verifyLogoutToken } from './logout-token.ts';
import type { LogoutTokenClaims } from './logout-token.ts';
import { classifyIdpFailure } from './oidc-errors.ts';
import { createProviderKeys } from './provider-keys.ts';
import type { ProviderKeyGetter } from './provider-keys.ts';

/** The resolved `oidc` block of one app (the fields this client reads). */
export interface OidcClientOptions {
  /** Used in log lines and status; default the client id. */
  readonly appName?: string;
  /** Issuer identifier; discovery at `<issuer>/.well-known/openid-configuration`. HTTPS unless loopback. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret?: string | undefined;
  readonly clientAuth: ClientAuthMethod;
  /** For `private_key_jwt`: PEM or JWK JSON. */
  readonly privateKey?: string | undefined;
  /** Requested scopes; `openid` is added when missing. */
  readonly scopes: readonly string[];
  /** Extra authorization-request parameters; never override the ones this client sets. */
  readonly extraAuthParams: Readonly<Record<string, string>>;
  /** Accepted ID-token (and logout-token) signing algorithms, e.g. `['RS256', 'ES256']`. */
  readonly idTokenAlgs: readonly string[];
  /** Allowed clock difference with the provider, in milliseconds. */
  readonly clockSkew: number;
  /** Accept any TLS certificate from the provider (logged loudly once). */
  readonly tlsInsecureSkipVerify: boolean;
  /** Oldest logout token accepted, in milliseconds; default 600 000 (10 minutes). */
  readonly logoutTokenMaxAgeMs?: number;
}

export interface OidcClientDeps {
  /** Current time in milliseconds. */
  readonly now: () => number;
  readonly logger?: Logger;
  /** Deadline for each HTTP request to the provider, in milliseconds. */
  readonly fetchTimeoutMs: number;
  /** Wraps every provider call (a circuit breaker per kind); default runs calls as is. */
  readonly guard?: IdpCallGuard;
  /** Discovery retry backoff: first delay and cap in milliseconds; default 250 and 30 000. */
  readonly discoveryRetry?: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  /** JWKS cache tuning, milliseconds; defaults 30 000 cooldown, 600 000 max age. */
  readonly jwks?: { readonly cooldownMs?: number; readonly cacheMaxAgeMs?: number };
}

/** Discovery state, for `/readyz`. */
export interface OidcClientStatus {
  readonly app: string;
  readonly issuer: string;
  readonly state: 'waiting' | 'ready' | 'closed';
  /** Discovery attempts so far. */
  readonly attempts: number;
  /** Why the last attempt failed (no secrets), while waiting. */
  readonly lastError?: string;
}

export interface AuthorizationUrlParams {
  readonly redirectUri: string;
  readonly state: string;
  readonly nonce: string;
  /** `BASE64URL(SHA256(code_verifier))`. */
  readonly codeChallenge: string;
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
  readonly scope?: string;
}

export interface ExchangeCodeParams {
  /** The callback URL the browser requested (only its query is read) … */
  readonly callbackUrl?: URL | string;
  /** … or its query parameters. */
  readonly params?: URLSearchParams;
  /** The redirect URI sent in the authorization request. */
  readonly redirectUri: string;
  readonly codeVerifier: string;
  readonly expectedState: string;
  readonly expectedNonce: string;
}

export interface ExchangeResult {
  readonly tokens: TokenSet;
  readonly claims: IdTokenClaims;
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
    readonly scope?: string;
  };
  /** Validated claims of the new ID token, when one came back. */
  readonly claims?: IdTokenClaims;
}

export interface EndSessionParams {
  readonly idTokenHint?: string;
  readonly postLogoutRedirectUri?: string;
  readonly state?: string;
}

/** The per-app OpenID Connect client. */
export interface OidcClient {
  readonly app: string;
  readonly issuer: string;
  readonly clientId: string;
  /** Resolves once discovery has answered; rejects only if the client is closed first. */
  readonly ready: Promise<void>;
  status(): OidcClientStatus;
  /** The provider's JWKS key getter for `jose.jwtVerify` (bearer tokens). Rejects before ready. */
  readonly getKey: ProviderKeyGetter;
  /** The TokenPolicy ID tokens are checked against (issuer, client id, algs, skew, clock). */
  readonly tokenPolicy: TokenPolicy;
  authorizationUrl(params: AuthorizationUrlParams): URL;
  /**
   * `authorizationUrl(params).href`, without building a URL per call: the 302 of every
   * unauthenticated navigation carries it.
   */
  authorizationLocation(params: AuthorizationUrlParams): string;
  exchangeCode(params: ExchangeCodeParams): Promise<ExchangeResult>;
  refresh(refreshToken: string, options?: { expectedSubject?: string }): Promise<RefreshResult>;
  /** RFC 7009; resolves false when the provider has no revocation endpoint. */
  revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<boolean>;
  /** RP-initiated logout URL with `client_id`; null when the provider has no end-session endpoint. */
  endSessionUrl(params: EndSessionParams): URL | null;
  verifyLogoutToken(token: string): Promise<LogoutTokenClaims>;
  /**
   * Fetches the discovery document once, through the discovery guard, so an outage is seen by
   * the breaker before a browser is sent to a provider that cannot answer. Rejects, classified,
   * when the provider does not answer with a 2xx.
   */
  probe(): Promise<void>;
  /** Stops discovery retries. */
  close(): void;
}

function validateOptions(options: OidcClientOptions): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const issuer = URL.parse(options.issuer);
  if (issuer === null) problems.push({ path: 'oidc.issuer', message: 'must be a URL' });
  else if (
    issuer.protocol !== 'https:' &&
    !(issuer.protocol === 'http:' && isLoopbackUrl(issuer))
  ) {
    problems.push({ path: 'oidc.issuer', message: 'must be an https URL (http only on loopback)' });
  }
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
  const provider = new Set(announced ?? ['RS256']);
  return allowed.filter((alg) => provider.has(alg));
}

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function errorSummary(err: unknown): string {
  return err instanceof Error ? err.message : 'unknown failure';
}

/**
 * Builds the client for one app and starts discovery in the background, retried with
 * exponential backoff until the provider answers. Throws {@link ConfigError} for options that
 * can never work (http issuer off loopback, missing secret or key, empty alg list).
 */
export function createOidcClient(options: OidcClientOptions, deps: OidcClientDeps): OidcClient {
  const auth = prepareClientAuth(options);
  const problems = [...validateOptions(options), ...('problems' in auth ? auth.problems : [])];
  if (problems.length > 0 || !('prepared' in auth)) throw new ConfigError(problems);

  const app = options.appName ?? options.clientId;
  const issuerUrl = new URL(options.issuer);
  const insecureHttp = issuerUrl.protocol === 'http:';
  const log = deps.logger?.child({ component: 'oidc', app });
  if (options.tlsInsecureSkipVerify) {
    log?.warn(
      { issuer: options.issuer },
      'TLS certificate verification to the identity provider is OFF (tlsInsecureSkipVerify); never use this in production',
    );
  }
  const guard = deps.guard ?? runUnguarded;
  const idpFetch = createIdpFetch({
    timeoutMs: deps.fetchTimeoutMs,
    tlsInsecureSkipVerify: options.tlsInsecureSkipVerify,
  });
  const scope = [...new Set(['openid', ...options.scopes])].join(' ');
  const configuredExtras = Object.entries(options.extraAuthParams).filter(
    ([name]) => !RESERVED_AUTH_PARAMS.has(name),
  );
  const tokenPolicy: TokenPolicy = {
    issuer: options.issuer,
    clientId: options.clientId,
    algorithms: [...options.idTokenAlgs],
    clockSkewMs: options.clockSkew,
    now: deps.now,
  };
  const metadata: Partial<ClientMetadata> = {
    [clockTolerance]: Math.ceil(options.clockSkew / 1000),
    ...(options.clientSecret === undefined ? {} : { client_secret: options.clientSecret }),
  };

  let discovered:
    | {
        config: Configuration;
        getKey: ProviderKeyGetter;
        /** The algorithms logout tokens may be signed with (see {@link logoutTokenAlgorithms}). */
        logoutAlgs: readonly string[];
      }
    | undefined;
  let attempts = 0;
  let lastError: string | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Nobody may be awaiting `ready` when the client is closed early; that is not a crash.
  ready.catch(() => undefined);

  const discoverOnce = async (): Promise<void> => {
    const clientAuth = await auth.prepared.load();
    const config = await guard('discovery', async () => {
      try {
        return await discovery(issuerUrl, options.clientId, metadata, clientAuth, {
          [customFetch]: idpFetch,
          execute: insecureHttp ? [allowInsecureRequests] : [],
          timeout: deps.fetchTimeoutMs / 1000,
        });
      } catch (err) {
        throw classifyIdpFailure(err, 'discovery');
      }
    }).catch((err: unknown) => {
      throw classifyIdpFailure(err, 'discovery');
    });
    const jwksUri = config.serverMetadata().jwks_uri;
    if (jwksUri === undefined) {
      throw new IdpUnavailableError('discovery', 'invalid_response', { detail: 'no jwks_uri' });
    }
    const getKey = createProviderKeys(new URL(jwksUri), {
      fetch: idpFetch,
      guard,
      timeoutMs: deps.fetchTimeoutMs,
      ...(deps.jwks?.cooldownMs === undefined ? {} : { cooldownMs: deps.jwks.cooldownMs }),
      ...(deps.jwks?.cacheMaxAgeMs === undefined ? {} : { cacheMaxAgeMs: deps.jwks.cacheMaxAgeMs }),
    });
    const logoutAlgs = logoutTokenAlgorithms(
      config.serverMetadata().id_token_signing_alg_values_supported,
      options.idTokenAlgs,
    );
    if (logoutAlgs.length === 0) {
      log?.warn(
        { issuer: options.issuer, idTokenAlgs: options.idTokenAlgs },
        'the provider signs ID tokens with no algorithm in oidc.idTokenAlgs: every back-channel logout token will be refused',
      );
    }
    discovered = { config, getKey, logoutAlgs };
  };

  const attempt = async (): Promise<void> => {
    retryTimer = undefined;
    if (closed) return;
    attempts += 1;
    try {
      await discoverOnce();
    } catch (err) {
      if (closed) return;
      lastError = errorSummary(err);
      const { initialDelayMs, maxDelayMs } = deps.discoveryRetry ?? {
        initialDelayMs: 250,
        maxDelayMs: 30_000,
      };
      const delayMs = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempts - 1, 20));
      log?.warn(
        { issuer: options.issuer, attempts, delayMs, error: lastError },
        'discovery failed',
      );
      retryTimer = setTimeout(() => void attempt(), delayMs);
      return;
    }
    if (closed) return;
    lastError = undefined;
    log?.info({ issuer: options.issuer, attempts }, 'discovery done');
    settle?.resolve();
  };
  void attempt();

  const requireDiscovered = (endpoint: IdpEndpoint) => {
    if (discovered !== undefined) return discovered;
    throw new IdpUnavailableError(endpoint, closed ? 'closed' : 'discovery_pending', {
      ...(lastError === undefined ? {} : { detail: lastError }),
    });
  };

  /** The authorization request URL: configured extras, per-request extras, then ours. */
  const buildLoginUrl = (config: Configuration, params: AuthorizationUrlParams): URL => {
    const query: Record<string, string> = {};
    for (const [name, value] of configuredExtras) query[name] = value;
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

  /** Authorization URLs as strings, for the configuration discovered last. */
  let locations: { config: Configuration; builder: AuthorizationLocations } | undefined;

  const getKey: ProviderKeyGetter = (header, token) =>
    Promise.resolve().then(() => requireDiscovered('jwks').getKey(header, token));

  const expiresAtFrom = (
    response: TokenEndpointResponse,
    claims: IdTokenClaims | undefined,
  ): number | undefined => {
    if (typeof response.expires_in === 'number') return deps.now() + response.expires_in * 1000;
    return claims === undefined ? undefined : claims.exp * 1000;
  };

  // Errors are classified inside the guard (so a breaker sees catalogue codes) and again
  // outside it, for what the guard itself throws (an open breaker); classifying is idempotent.
  const tokenCall = <T>(endpoint: IdpEndpoint, call: () => Promise<T>): Promise<T> =>
    guard(endpoint === 'revocation' ? 'revocation' : 'token', async () => {
      try {
        return await call();
      } catch (err) {
        throw classifyIdpFailure(err, endpoint);
      }
    }).catch((err: unknown) => {
      throw classifyIdpFailure(err, endpoint);
    });

  return {
    app,
    issuer: options.issuer,
    clientId: options.clientId,
    ready,
    tokenPolicy,
    getKey,

    status: () => ({
      app,
      issuer: options.issuer,
      state: closed ? 'closed' : discovered === undefined ? 'waiting' : 'ready',
      attempts,
      ...(lastError === undefined || discovered !== undefined ? {} : { lastError }),
    }),

    authorizationUrl: (params) => buildLoginUrl(requireDiscovered('authorization').config, params),

    authorizationLocation: (params) => {
      const { config } = requireDiscovered('authorization');
      if (params.extraAuthParams !== undefined) return buildLoginUrl(config, params).href;
      if (locations?.config !== config) {
        locations = {
          config,
          builder: new AuthorizationLocations((values) => buildLoginUrl(config, values)),
        };
      }
      return locations.builder.location(params);
    },

    exchangeCode: async (params) => {
      const { config, getKey: keys } = requireDiscovered('token');
      const query =
        params.params ??
        (params.callbackUrl === undefined
          ? new URLSearchParams()
          : new URL(params.callbackUrl).searchParams);
      // The browser-bound state is ours to check (CSRF); the library checks it again.
      const state = query.get('state');
      if (state === null || !constantTimeEqual(state, params.expectedState)) {
        throw new StateMismatchError();
      }
      const currentUrl = new URL(params.redirectUri);
      currentUrl.search = query.toString();
      const response = await tokenCall('token', () =>
        authorizationCodeGrant(config, currentUrl, {
          pkceCodeVerifier: params.codeVerifier,
          expectedState: params.expectedState,
          expectedNonce: params.expectedNonce,
          idTokenExpected: true,
        }),
      );
      if (response.id_token === undefined) {
        throw new TokenInvalidError('id_token', 'no ID token in the token response');
      }
      const claims = await verifyIdToken(response.id_token, keys, tokenPolicy);
      if (claims.nonce !== params.expectedNonce) throw new TokenInvalidError('id_token', 'nonce');
      return {
        tokens: {
          accessToken: response.access_token,
          idToken: response.id_token,
          expiresAt: expiresAtFrom(response, claims) ?? claims.exp * 1000,
          ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
          ...(response.scope === undefined ? {} : { scope: response.scope }),
        },
        claims,
      };
    },

    refresh: async (refreshToken, refreshOptions) => {
      const { config, getKey: keys } = requireDiscovered('token');
      const response = await tokenCall('token', () => refreshTokenGrant(config, refreshToken));
      let claims: IdTokenClaims | undefined;
      if (response.id_token !== undefined) {
        claims = await verifyIdToken(response.id_token, keys, tokenPolicy);
        // OIDC Core §12.2: a refreshed ID token is about the same subject.
        const expected = refreshOptions?.expectedSubject;
        if (expected !== undefined && claims.sub !== expected) {
          throw new TokenInvalidError('id_token', 'sub changed on refresh');
        }
      }
      const expiresAt = expiresAtFrom(response, claims);
      return {
        tokens: {
          accessToken: response.access_token,
          ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
          ...(response.id_token === undefined ? {} : { idToken: response.id_token }),
          ...(expiresAt === undefined ? {} : { expiresAt }),
          ...(response.scope === undefined ? {} : { scope: response.scope }),
        },
        ...(claims === undefined ? {} : { claims }),
      };
    },

    revoke: async (token, hint) => {
      const { config } = requireDiscovered('revocation');
      if (config.serverMetadata().revocation_endpoint === undefined) return false;
      await tokenCall('revocation', () =>
        tokenRevocation(config, token, { token_type_hint: hint }),
      );
      return true;
    },

    endSessionUrl: (params) => {
      const { config } = requireDiscovered('discovery');
      if (config.serverMetadata().end_session_endpoint === undefined) return null;
      const query: Record<string, string> = { client_id: options.clientId };
      if (params.idTokenHint !== undefined) query['id_token_hint'] = params.idTokenHint;
      if (params.postLogoutRedirectUri !== undefined) {
        query['post_logout_redirect_uri'] = params.postLogoutRedirectUri;
      }
      if (params.state !== undefined) query['state'] = params.state;
      return buildEndSessionUrl(config, query);
    },

    verifyLogoutToken: async (token) => {
      const { logoutAlgs } = requireDiscovered('jwks');
      return verifyLogoutToken(token, getKey, {
        ...tokenPolicy,
        algorithms: logoutAlgs,
        maxAgeMs: options.logoutTokenMaxAgeMs ?? 600_000,
      });
    },

    probe: () =>
      guard('discovery', async () => {
        const url = new URL(
          '.well-known/openid-configuration',
          `${options.issuer.replace(/\/$/, '')}/`,
        );
        const response = await idpFetch(url.href, {
          method: 'GET',
          headers: { accept: 'application/json' },
        });
        await response.body?.cancel();
        if (!response.ok) {
          throw new IdpUnavailableError('discovery', 'http_status', {
            httpStatus: response.status,
          });
        }
      }).catch((err: unknown) => {
        throw classifyIdpFailure(err, 'discovery');
      }),

    close: () => {
      if (closed) return;
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      if (discovered === undefined) {
        settle?.reject(new IdpUnavailableError('discovery', 'closed'));
      }
    },
  };
}
