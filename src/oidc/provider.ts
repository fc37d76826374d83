/** One OpenID Provider (issuer): discovery, its signing keys, one guard and one failure classifier, shared by every app on it. */
import { Configuration, None, allowInsecureRequests, customFetch, discovery } from 'openid-client';
import type { ClientAuth, ClientMetadata, ServerMetadata } from 'openid-client';
import { ConfigError, IdpUnavailableError, type IdpEndpoint } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { runUnguarded } from './idp-call-guard.ts';
import type { IdpCallGuard, IdpCallKind } from './idp-call-guard.ts';
import { createIdpFetch } from './idp-fetch.ts';
import { isLoopbackHost } from '../loopback-host.ts';
import type { IdpFetch } from './idp-fetch.ts';
import { classifyIdpFailure } from './oidc-errors.ts';
import { discoveryUrlOf, issuerMismatch } from './provider-checks.ts';
import { createProviderKeys } from './provider-keys.ts';
import type { ProviderKeyGetter } from './provider-keys.ts';
import type { Clock } from '../clock.ts';

/** Deadline of each HTTP request to a provider, in milliseconds. */
export const PROVIDER_FETCH_TIMEOUT_MS = 5_000;
/**
 * Deadline of a refresh grant, in milliseconds. Nobody waits on a grant (callers are bounded
 * separately), and a grant we abort may already have rotated the refresh token at the provider,
 * so it is given the time to finish: a slow answer is kept, not lost.
 */
export const REFRESH_GRANT_TIMEOUT_MS = 60_000;
/** Discovery retry backoff until the provider first answers: first delay and cap, ms. */
export const DISCOVERY_RETRY = { initialDelayMs: 250, maxDelayMs: 30_000 } as const;
/**
 * JWKS cache, ms: least time between refetches for an unknown `kid`, longest use of one set, and
 * least time between two refetches forced by a key failure (unknown `kid` inside the cooldown,
 * or a signature failing under a known `kid`), per issuer.
 */
export const JWKS_CACHE = {
  cooldownMs: 30_000,
  cacheMaxAgeMs: 600_000,
  forcedRefetchIntervalMs: 10_000,
} as const;

/** The provider-level settings; every app on the issuer must agree on them (config rule). */
export interface ProviderOptions {
  /** Issuer identifier; discovery at `<issuer>/.well-known/openid-configuration`. HTTPS unless loopback. */
  readonly issuer: string;
  /** Bounded, URL-free name for logs (the first app on the issuer). */
  readonly name: string;
  /** Accept any TLS certificate from the provider (logged loudly once). */
  readonly tlsInsecureSkipVerify: boolean;
  /**
   * Accept a discovery document whose issuer is a template with `{tenantid}` on the issuer's
   * origin (Microsoft Entra ID's `common` and `organizations` issuers); ID tokens then name
   * their tenant's issuer. Default false: the discovered issuer must equal `issuer`.
   */
  readonly tenantIssuer?: boolean;
}

/** The placeholder of Microsoft Entra ID's multi-tenant issuer template. */
export const TENANT_PLACEHOLDER = '{tenantid}';

export interface ProviderDeps {
  readonly logger?: Logger;
  /** Wraps every provider call (a circuit breaker per kind); default runs calls as is. */
  readonly guard?: IdpCallGuard;
  /** Deadline for each HTTP request to the provider, ms; default {@link PROVIDER_FETCH_TIMEOUT_MS}. */
  readonly fetchTimeoutMs?: number;
  /** Deadline of a refresh grant, ms; default {@link REFRESH_GRANT_TIMEOUT_MS}. */
  readonly grantTimeoutMs?: number;
  /** Default {@link DISCOVERY_RETRY}. */
  readonly discoveryRetry?: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  /** Clock of the JWKS forced-refetch rate limit; default `Date.now`. */
  readonly now?: Clock;
}

/** Discovery state, for `/readyz`. */
export interface ProviderStatus {
  readonly issuer: string;
  /**
   * `misconfigured`: the provider answers, but its discovery document cannot work with this
   * configuration (another issuer, no ID-token algorithm in common); `lastError` says why.
   */
  readonly state: 'waiting' | 'ready' | 'misconfigured' | 'closed';
  /** Discovery attempts so far. */
  readonly attempts: number;
  /** Why the last attempt failed (no secrets), while waiting or misconfigured. */
  readonly lastError?: string;
}

/** The client-side settings a per-app {@link Configuration} is built from. */
export interface ClientRegistration {
  readonly clientId: string;
  readonly metadata: Partial<ClientMetadata>;
  readonly auth: ClientAuth;
}

/** One issuer, shared by every app (and every client id) on it. */
export interface Provider {
  readonly issuer: string;
  readonly name: string;
  /** Resolves once discovery has answered; rejects only if the provider is closed first. */
  readonly ready: Promise<void>;
  status(): ProviderStatus;
  /** The discovery document; throws `IdpUnavailableError` (`discovery_pending`) before ready. */
  metadata(endpoint: IdpEndpoint): ServerMetadata;
  /** The issuer's JWKS key getter for `jose.jwtVerify`; one cache per issuer. Rejects before ready. */
  readonly getKey: ProviderKeyGetter;
  /**
   * An openid-client configuration of one client at this provider, using the provider's fetch
   * (deadline, TLS setting). `deadline: 'grant'` gives its calls the refresh-grant deadline
   * instead of the per-request one. Throws like {@link metadata} before ready.
   */
  configure(
    client: ClientRegistration,
    endpoint: IdpEndpoint,
    deadline?: 'request' | 'grant',
    wrapFetch?: (fetch: IdpFetch) => IdpFetch,
  ): Configuration;
  /**
   * Runs one call of `kind` through the guard; whatever it throws is classified as a failure at
   * `endpoint` (outage or refusal), inside the guard so a breaker sees catalogue codes.
   */
  call<T>(kind: IdpCallKind, endpoint: IdpEndpoint, fn: () => Promise<T>): Promise<T>;
  /**
   * Fetches the discovery document once, the same way discovery does, as a call of kind
   * `probe`, so an outage is seen by the breaker before a browser is sent to a provider that
   * cannot answer. Rejects, classified.
   */
  probe(): Promise<void>;
  /** Stops discovery retries. */
  close(): void;
}

/**
 * The provider answered discovery with a document no configuration of ours can work with; the
 * message names both values and the fix.
 */
export class ProviderMisconfiguredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProviderMisconfiguredError';
  }
}

/** Checks the provider-level options; paths are relative to an app. */
export function validateIssuer(issuer: string): { path: string; message: string }[] {
  const url = URL.parse(issuer);
  if (url === null) return [{ path: 'oidc.issuer', message: 'must be a URL' }];
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    return [{ path: 'oidc.issuer', message: 'must be an https URL (http only on loopback)' }];
  }
  return [];
}

/**
 * Reads `issuer`'s discovery document once. The issuer it announces is not checked here (see
 * {@link issuerMismatch}). Rejects with what the library or `fetch` threw, unclassified.
 */
export async function readDiscoveryDocument(
  issuer: string,
  fetch: IdpFetch,
  timeoutMs: number,
): Promise<ServerMetadata> {
  const url = discoveryUrlOf(issuer);
  // Only the server metadata is kept: the client id `discovery()` wants is never sent. Given
  // the document's URL, the library skips its own issuer check (which compares parsed URLs, so
  // `https://idp` and `https://idp/` pass): ours compares exactly.
  const config = await discovery(url, 'discovery', undefined, None(), {
    [customFetch]: fetch,
    execute: url.protocol === 'http:' ? [allowInsecureRequests] : [],
    timeout: timeoutMs / 1000,
  });
  return config.serverMetadata();
}

/**
 * Builds the provider and starts discovery in the background, retried with exponential backoff
 * until the provider answers. Throws {@link ConfigError} for an issuer that can never work.
 */
export function createProvider(options: ProviderOptions, deps: ProviderDeps = {}): Provider {
  const problems = validateIssuer(options.issuer);
  if (problems.length > 0) throw new ConfigError(problems);

  const insecureHttp = new URL(options.issuer).protocol === 'http:';
  const log = deps.logger?.child({ component: 'oidc', provider: options.name });
  if (options.tlsInsecureSkipVerify) {
    log?.warn(
      { issuer: options.issuer },
      'TLS certificate verification to the identity provider is OFF (tlsInsecureSkipVerify); never use this in production',
    );
  }
  const guard = deps.guard ?? runUnguarded;
  const fetchTimeoutMs = deps.fetchTimeoutMs ?? PROVIDER_FETCH_TIMEOUT_MS;
  const retry = deps.discoveryRetry ?? DISCOVERY_RETRY;
  const idpFetch: IdpFetch = createIdpFetch({
    timeoutMs: fetchTimeoutMs,
    tlsInsecureSkipVerify: options.tlsInsecureSkipVerify,
  });
  const grantTimeoutMs = deps.grantTimeoutMs ?? REFRESH_GRANT_TIMEOUT_MS;
  const grantFetch: IdpFetch = createIdpFetch({
    timeoutMs: grantTimeoutMs,
    tlsInsecureSkipVerify: options.tlsInsecureSkipVerify,
  });

  // Errors are classified inside the guard (so a breaker sees catalogue codes) and again
  // outside it, for what the guard itself throws (an open breaker); classifying is idempotent.
  const call = <T>(kind: IdpCallKind, endpoint: IdpEndpoint, fn: () => Promise<T>): Promise<T> =>
    guard(kind, async () => {
      try {
        return await fn();
      } catch (err) {
        throw classifyIdpFailure(err, endpoint);
      }
    }).catch((err: unknown) => {
      throw classifyIdpFailure(err, endpoint);
    });

  // An Entra multi-tenant issuer is announced as a `{tenantid}` template on the configured
  // issuer's origin (each ID token's `iss` fills it with its `tid`); any other issuer must be
  // announced exactly as configured.
  const tenantIssuer = options.tenantIssuer === true;
  const issuerOrigin = new URL(options.issuer).origin;
  const isTenantTemplate = (announced: unknown): boolean =>
    tenantIssuer &&
    typeof announced === 'string' &&
    announced.includes(TENANT_PLACEHOLDER) &&
    URL.parse(announced.replace(TENANT_PLACEHOLDER, 'x'))?.origin === issuerOrigin;
  const fetchMetadata = (kind: 'discovery' | 'probe' = 'discovery'): Promise<ServerMetadata> =>
    call(kind, 'discovery', () => readDiscoveryDocument(options.issuer, idpFetch, fetchTimeoutMs));

  let discovered: { metadata: ServerMetadata; getKey: ProviderKeyGetter } | undefined;
  let attempts = 0;
  let lastError: string | undefined;
  let misconfigured = false;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Nobody may be awaiting `ready` when the provider is closed early; that is not a crash.
  ready.catch(() => undefined);

  const discoverOnce = async (): Promise<void> => {
    const metadata = await fetchMetadata();
    const mismatch = isTenantTemplate(metadata.issuer)
      ? undefined
      : issuerMismatch(options.issuer, metadata.issuer);
    if (mismatch !== undefined) throw new ProviderMisconfiguredError(mismatch);
    if (metadata.jwks_uri === undefined) {
      throw new IdpUnavailableError('discovery', 'invalid_response', { detail: 'no jwks_uri' });
    }
    const getKey = createProviderKeys(new URL(metadata.jwks_uri), {
      fetch: idpFetch,
      guard,
      timeoutMs: fetchTimeoutMs,
      ...JWKS_CACHE,
      now: deps.now ?? Date.now,
    });
    discovered = { metadata, getKey };
  };

  const attempt = async (): Promise<void> => {
    retryTimer = undefined;
    if (closed) return;
    attempts += 1;
    try {
      await discoverOnce();
    } catch (err) {
      if (closed) return;
      lastError = err instanceof Error ? err.message : 'unknown failure';
      misconfigured = err instanceof ProviderMisconfiguredError;
      const delayMs = Math.min(
        retry.maxDelayMs,
        retry.initialDelayMs * 2 ** Math.min(attempts - 1, 20),
      );
      if (misconfigured) {
        // Retried all the same: the provider may be the one whose configuration is fixed.
        log?.error(
          { issuer: options.issuer, attempts, delayMs, error: lastError },
          'discovery answered with another issuer; no login can succeed until oidc.issuer matches it',
        );
      } else {
        log?.warn(
          { issuer: options.issuer, attempts, delayMs, error: lastError },
          'discovery failed',
        );
      }
      retryTimer = setTimeout(() => void attempt(), delayMs);
      return;
    }
    if (closed) return;
    lastError = undefined;
    misconfigured = false;
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

  return {
    issuer: options.issuer,
    name: options.name,
    ready,
    status: () => ({
      issuer: options.issuer,
      state: closed
        ? 'closed'
        : discovered !== undefined
          ? 'ready'
          : misconfigured
            ? 'misconfigured'
            : 'waiting',
      attempts,
      ...(lastError === undefined || discovered !== undefined ? {} : { lastError }),
    }),
    metadata: (endpoint) => requireDiscovered(endpoint).metadata,
    getKey: Object.assign(
      (header: Parameters<ProviderKeyGetter>[0], token: Parameters<ProviderKeyGetter>[1]) =>
        Promise.resolve().then(() => requireDiscovered('jwks').getKey(header, token)),
      {
        refetchAfterFailure: (error: unknown) =>
          discovered?.getKey.refetchAfterFailure?.(error) ?? Promise.resolve(false),
      },
    ),
    configure: (client, endpoint, deadline = 'request', wrapFetch) => {
      const { metadata } = requireDiscovered(endpoint);
      const config = new Configuration(metadata, client.clientId, client.metadata, client.auth);
      const grant = deadline === 'grant';
      const fetch = grant ? grantFetch : idpFetch;
      config[customFetch] = wrapFetch === undefined ? fetch : wrapFetch(fetch);
      config.timeout = (grant ? grantTimeoutMs : fetchTimeoutMs) / 1000;
      if (insecureHttp) allowInsecureRequests(config);
      return config;
    },
    call,
    probe: async () => {
      await fetchMetadata('probe');
    },
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
