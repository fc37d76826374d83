/**
 * The composition root: config → logger → metrics → pipeline → servers, built in order and shut
 * down in reverse. Nothing long-lived is created anywhere else.
 */
import type { Server as HttpServer } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { buildAppRuntime, type AppRuntime } from './authz/app-runtime.ts';
import { Authorizer, type Runtime } from './authz/authorizer.ts';
import { BearerRevocations } from './authz/bearer-revocations.ts';
import { buildBearerRuntime } from './authz/bearer-runtime.ts';
import { createBearerStep } from './authz/bearer-step.ts';
import { loginOutcomes } from './authz/login-outcome.ts';
import { createCallbackStep } from './authz/login.ts';
import { createLogoutStep } from './authz/logout.ts';
import { createLogoutReturnStep } from './authz/logout-return.ts';
import { Pipeline, type StepFactory } from './authz/pipeline.ts';
import { PageTemplates } from './authz/pages.ts';
import { createSessionStep } from './authz/session-step.ts';
import { createLoginOrDenyStep, createPreflightStep, createPublicPathStep } from './authz/steps.ts';
import { issuerKey } from './config/issuer-key.ts';
import type { AppConfig, Config } from './config/schema.ts';
import { createIntrospectionClient } from './oidc/introspection.ts';
import { createOidcClient, type OidcClient } from './oidc/oidc-client.ts';
import { createKeysOnlyClient } from './oidc/keys-only-client.ts';
import {
  JWKS_CACHE,
  PROVIDER_FETCH_TIMEOUT_MS,
  createProvider,
  type Provider,
} from './oidc/provider.ts';
import { createIdpFetch, type IdpFetch } from './oidc/idp-fetch.ts';
import { createIssuerKeys } from './oidc/issuer-keys.ts';
import type { ProviderKeyGetter } from './oidc/provider-keys.ts';
import { GrantLimiter, RefreshCoordinator } from './oidc/refresh-coordinator.ts';
import { legacyCookieNameFor } from './config/cookie-scopes.ts';
import { sessionBindingFor } from './session/session-binding.ts';
import { CookieSessions } from './session/cookie-sessions.ts';
import { ServerSessions } from './session/server-sessions.ts';
import type { Sessions } from './session/sessions.ts';
import { noSessions } from './session/no-sessions.ts';
import { SessionRevocations } from './session/session-revocations.ts';
import {
  appsForLogoutToken,
  backchannelLogout,
  createBackchannelLogoutStep,
  createFrontchannelLogoutStep,
  invalidToken,
  logoutTokenFrom,
  missingToken,
  providerLogoutReply,
  type ProviderLogoutResult,
} from './authz/provider-logout.ts';
import type { Breaker } from './resilience/breaker.ts';
import { createBreakers, type Breakers } from './resilience/breakers.ts';
import { createIdpGuard } from './resilience/idp-guard.ts';
import { timeIdpCalls } from './oidc/idp-call-guard.ts';
import { createAppKeyspaces } from './store/keyspaces.ts';
import { RevocationTrusts } from './session/revocation-trust.ts';
import type { RedisBackend } from './store/redis-backend.ts';
import { switchableBackend } from './store/switchable-backend.ts';
import { timeStoreCalls } from './store/timed-backend.ts';
import { memoryStore, redisStore, type SharedStore } from './store/shared-store.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { createSubjectLabel } from './observability/subject-label.ts';
import { createAccessLog } from './observability/access-log.ts';
import { Metrics } from './observability/metrics.ts';
import { createOtlpExporter } from './observability/otlp-exporter.ts';
import { createTracer, noTracer, type Tracer } from './observability/tracing.ts';
import { createAdminServer } from './server/admin-server.ts';
import { createGrpcServer } from './server/grpc-server.ts';
import { HealthState, type ReadinessProbe } from './server/health-state.ts';
import { createHttpServer, type DirectRoute } from './server/http-server.ts';
import {
  listenerSecureContext,
  listenerTlsOptions,
  tlsChangeNeedsRestart,
  type ListenTls,
} from './server/listener-tls.ts';
import { loadProtos } from './server/protos.ts';
import { AssertionKeyring } from './authz/assertion-keyring.ts';
import { UpstreamAssertion } from './authz/upstream-assertion.ts';

/** Where the HTTP listener serves the upstream assertion keys. */
export const JWKS_PATH = '/.well-known/jwks.json';
import { hostPortOf } from './host-port.ts';

export interface StartOptions {
  /**
   * Overrides the logger built from `config.log`; its level is then the caller's, and a reload
   * leaves it alone.
   */
  readonly logger?: Logger;
  /** Where the logger built from `config.log` writes; stdout by default. */
  readonly logDestination?: NodeJS.WritableStream;
  /** The clock; `Date.now` by default. */
  readonly now?: () => number;
}

/** A running server. */
export interface ServerHandle {
  readonly ports: { readonly grpc: number; readonly http: number; readonly admin: number };
  readonly health: HealthState;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The decision entry point both listeners call; for in-process measurement. */
  readonly authorizer: Authorizer;
  /**
   * Revokes the bearer token with id `jti` for app `app` on every replica sharing the store, until
   * `expiresAt` (ms since the epoch; the token's `exp`). Rejects when the app is unknown or the
   * store cannot take the write, so a resolved call means every replica refuses the token.
   */
  revokeBearerToken(app: string, jti: string, expiresAt: number): Promise<void>;
  /** Applies a new, already validated config; listener addresses need a restart. */
  reload(config: Config): void;
  /**
   * Shuts down for a rolling restart: reports NOT_SERVING at once but keeps serving for
   * `shutdown.drainDelay`, so load balancers stop sending before it stops accepting; then GOAWAY,
   * in-flight checks finish within `shutdown.drainTimeout`, and every listener closes. A second
   * call ends the delay at once and returns the same promise.
   */
  close(): Promise<void>;
}

/** Long-lived services that outlive a config reload. */
interface Services {
  readonly logger: Logger;
  readonly now: () => number;
  readonly store: SharedStore;
  readonly breakers: Breakers;
  readonly metrics: Metrics;
  /** The tracer of the current config (a reload may replace it). */
  readonly tracer: () => Tracer;
  /**
   * One provider per issuer (and TLS setting), shared by every app on it: one discovery, one
   * JWKS cache, one set of breakers. Kept across reloads while an app still uses the issuer.
   */
  readonly providers: Map<string, ProviderEntry>;
  /** OIDC clients by their app's name and `oidc` block, reused while that block is unchanged. */
  readonly oidcClients: Map<string, OidcClient>;
  /** Upstream assertion keys: generated ones kept, rotated ones published until they expire. */
  readonly assertionKeys: AssertionKeyring;
  /**
   * What was found not revoked, per app: kept across reloads, so a logout taken by a runtime a
   * reload replaced still reaches its successor.
   */
  readonly revocationTrusts: RevocationTrusts;
}

interface ProviderEntry {
  readonly provider: Provider;
  /** `oidc.probeInterval`, ms; the same for every app on the issuer (a config rule). */
  readonly probeInterval: number;
  /** The provider's discovery breaker, which the probes open and close. */
  readonly discoveryBreaker: Breaker;
}

function providerKey(app: AppConfig): string {
  return JSON.stringify([
    issuerKey(app.oidc.issuer),
    app.oidc.tlsInsecureSkipVerify,
    app.oidc.provider === 'entra',
  ]);
}

/** The provider of `app`'s issuer: the one already running (a reload keeps it), else a new one. */
function providerFor(app: AppConfig, services: Services): Provider {
  const key = providerKey(app);
  let provider = services.providers.get(key)?.provider;
  if (provider === undefined) {
    // Breakers and their series are named after the first app on the issuer; a name still
    // held by another issuer's provider (after a reload) gets a suffix, so none share breakers.
    const taken = new Set([...services.providers.values()].map((e) => e.provider.name));
    let name = app.name;
    for (let n = 2; taken.has(name); n += 1) name = `${app.name}~${n}`;
    provider = createProvider(
      {
        issuer: app.oidc.issuer,
        name,
        tlsInsecureSkipVerify: app.oidc.tlsInsecureSkipVerify,
        tenantIssuer: app.oidc.provider === 'entra',
      },
      {
        logger: services.logger,
        guard: timeIdpCalls(
          createIdpGuard(services.breakers.idp(name)),
          (endpoint, seconds, error) => {
            services.metrics.providerCallFinished(endpoint, seconds);
            services.tracer().providerCall(endpoint, seconds, error);
          },
        ),
        now: services.now,
      },
    );
  }
  // A reload may change the interval of a kept provider.
  services.providers.set(key, {
    provider,
    probeInterval: app.oidc.probeInterval,
    discoveryBreaker: services.breakers.idp(provider.name).discovery,
  });
  return provider;
}

function oidcClientFor(app: AppConfig, provider: Provider, services: Services): OidcClient {
  const key = JSON.stringify([app.name, app.oidc]);
  let client = services.oidcClients.get(key);
  if (client === undefined) {
    const { clientId } = app.oidc;
    client =
      clientId === undefined
        ? createKeysOnlyClient(provider, app.name)
        : createOidcClient(
            provider,
            { ...app.oidc, clientId, appName: app.name },
            { now: services.now, logger: services.logger },
          );
    services.oidcClients.set(key, client);
  }
  return client;
}

/**
 * The key-getter factory of `app`'s further bearer issuers (`bearer.issuers`): each getter is
 * lazy, and its fetch, breakers and key set are made at the first token naming its issuer.
 */
function bearerIssuerKeys(
  app: AppConfig,
  services: Services,
): (issuer: string, jwksUri: string | undefined) => ProviderKeyGetter {
  let fetch: IdpFetch | undefined;
  const lazyFetch: IdpFetch = (url, init) =>
    (fetch ??= createIdpFetch({
      timeoutMs: PROVIDER_FETCH_TIMEOUT_MS,
      tlsInsecureSkipVerify: app.oidc.tlsInsecureSkipVerify,
    }))(url, init);
  return (issuer, jwksUri) => {
    const index = app.bearer.issuers.findIndex((entry) => entry.issuer === issuer);
    return createIssuerKeys(issuer, jwksUri, {
      fetch: lazyFetch,
      guard: () => createIdpGuard(services.breakers.idp(`${app.name}~bearer${index + 1}`)),
      timeoutMs: PROVIDER_FETCH_TIMEOUT_MS,
      ...JWKS_CACHE,
      retryIntervalMs: JWKS_CACHE.forcedRefetchIntervalMs,
      now: services.now,
    });
  };
}

function buildApp(app: AppConfig, services: Services, config: Config): AppRuntime {
  const options = {
    app: app.name,
    sessionMaxAge: app.session.maxAge,
    loginTimeout: app.session.loginTimeout,
    refreshLockTtl: app.refresh.lockTtl,
    refreshResultTtl: app.refresh.resultTtl,
    now: services.now,
  };
  // The same records over two backends: `durable` fails while the store is down, `degradable`
  // falls back to process memory (SPEC §11).
  const durable = createAppKeyspaces(services.store.durable, options);
  const degradable = createAppKeyspaces(services.store.degradable, options);
  const revocations = new SessionRevocations(degradable, durable, {
    now: services.now,
    trust: services.revocationTrusts.sessions(app.name),
  });
  const session = {
    ...app.session,
    binding: sessionBindingFor(config, app),
    legacyCookieName: legacyCookieNameFor(config.apps, app),
    clockSkew: app.oidc.clockSkew,
  };
  const sessionDeps = {
    now: services.now,
    loginReplayMarks: degradable.loginReplayMarks,
    isRevoked: revocations.isRevoked,
  };
  // Server sessions need the store to answer (a failure is a 503), so they use `durable`.
  // An API-only app (no client) has no sessions: it reads and writes no cookie.
  const sessions: Sessions = !app.browserLogin
    ? noSessions
    : app.session.store === 'server'
      ? new ServerSessions(session, { ...sessionDeps, serverSessions: durable })
      : new CookieSessions(session, sessionDeps);
  const provider = providerFor(app, services);
  const idp = services.breakers.idp(provider.name);
  const oidc = oidcClientFor(app, provider, services);
  const introspection = app.bearer.introspection;
  const bearer = buildBearerRuntime(app, {
    getKey: oidc.getKey,
    issuerKeys: bearerIssuerKeys(app, services),
    introspection:
      introspection?.enabled === true &&
      introspection.clientId !== undefined &&
      introspection.clientSecret !== undefined
        ? createIntrospectionClient(provider, {
            clientId: introspection.clientId,
            clientSecret: introspection.clientSecret,
          })
        : undefined,
    // Read on every bearer request (may degrade to memory); revocations must reach the store.
    revocations: new BearerRevocations(
      degradable.revokedTokens,
      durable.revokedTokens,
      services.revocationTrusts.bearerTokens(app.name),
    ),
    // A proof whose use cannot be recorded on every replica is refused (503), never accepted.
    dpopProofs: durable.dpopProofs,
    metrics: services.metrics.bearerMetrics(app.name),
    now: services.now,
  });
  // Refresh coordination degrades to this process while the store is down (SPEC §11).
  const refresher = new RefreshCoordinator(
    {
      appName: app.name,
      lockTtl: app.refresh.lockTtl,
      waitTimeout: app.refresh.waitTimeout,
      maxAttempts: app.refresh.maxAttempts,
      cooldown: app.refresh.cooldown,
      resultTtl: app.refresh.resultTtl,
      // Every replica's store breaker has tried the store again (and written what it published
      // while the store was down) within one reset timeout of the store coming back.
      storeRecovery: config.breakers.store.resetTimeout + 1_000,
      outageGrace: app.refresh.outageGrace,
    },
    {
      oidc,
      locks: degradable.refreshLocks,
      results: degradable.refreshResults,
      metrics: services.metrics.refreshMetrics(app.name),
      grants: new GrantLimiter(app.refresh.maxConcurrent),
      now: services.now,
      logger: services.logger,
      degraded: () => services.store.degraded(),
      msSinceDegraded: () => services.store.msSinceDegraded(),
    },
  );
  return buildAppRuntime(app, {
    oidc,
    refresher,
    sessions,
    revocations,
    logoutTokenReplay: durable.logoutTokenReplay,
    bearer,
    logins: services.metrics.loginMetrics(app.name, loginOutcomes),
    subjectLabel: createSubjectLabel(config.log.subject, app.session.secrets[0] ?? ''),
    assertion:
      app.upstreamAssertion === undefined
        ? undefined
        : new UpstreamAssertion(
            app.upstreamAssertion,
            app.name,
            services.assertionKeys.keysFor(app.name, app.upstreamAssertion),
          ),
    // Down while either breaker is open, and while the discovery breaker's probe is testing a
    // provider that was down (half-open): a browser sent now might meet a dead provider. Not
    // while the token breaker is half-open: nothing probes it but logins and refreshes.
    idpDownFor: () => {
      const waitMs = Math.max(idp.discovery.retryAfterMs(), idp.token.retryAfterMs());
      const down = idp.discovery.state() !== 'closed' || idp.token.state() === 'open';
      return down ? Math.max(1, Math.ceil(waitMs / 1000)) : undefined;
    },
  });
}

/**
 * Fetches each provider's discovery document every `oidc.probeInterval` through its breaker, so
 * a provider outage opens the breaker even when no login or refresh is running (a failed probe
 * opens it at once), and again as soon as the breaker goes half-open, so it closes when the
 * provider is back without waiting for the next interval or a browser sent to a dead provider.
 * One loop per issuer, however many apps use it. Returns the stop.
 */
function startProviderProbes(providers: Iterable<ProviderEntry>): () => void {
  const stops = [...providers].map(({ provider, probeInterval, discoveryBreaker }) => {
    const probe = () => {
      if (provider.status().state === 'ready') provider.probe().catch(() => undefined);
    };
    const timer = setInterval(probe, probeInterval).unref();
    const unsubscribe = discoveryBreaker.onStateChange((state) => {
      // After opossum's emit, so the probe takes the half-open slot once the state settled.
      if (state === 'half_open') setImmediate(probe);
    });
    return () => {
      clearInterval(timer);
      unsubscribe();
    };
  });
  return () => stops.forEach((stop) => stop());
}

/** Everything built from one config that a reload replaces. */
function buildRuntime(
  config: Config,
  services: Services,
): Runtime & { readonly apps: readonly AppRuntime[] } {
  const apps = config.apps.map((app) => buildApp(app, services, config));
  services.assertionKeys.keepOnly(
    new Set(config.apps.flatMap((app) => (app.upstreamAssertion === undefined ? [] : [app.name]))),
  );
  const inUse = new Set(apps.map((app) => app.oidc));
  for (const [key, client] of services.oidcClients) {
    if (!inUse.has(client)) services.oidcClients.delete(key);
  }
  const providersInUse = new Set(config.apps.map(providerKey));
  for (const [key, { provider }] of services.providers) {
    if (!providersInUse.has(key)) {
      provider.close();
      services.providers.delete(key);
    }
  }
  const stepDeps = { logger: services.logger, now: services.now };
  return {
    apps,
    pipeline: new Pipeline({
      apps,
      allowUnmatched: config.allowUnmatched,
      budgetMs: config.request.budget,
      pages: new PageTemplates(config.pages.templates),
      steps: [
        createLogoutReturnStep,
        createPublicPathStep,
        createPreflightStep,
        createCallbackStep,
        createLogoutStep,
        createBackchannelLogoutStep,
        createFrontchannelLogoutStep,
        createBearerStep,
        createSessionStep,
        createLoginOrDenyStep,
      ].map((create: StepFactory) => create(stepDeps)),
    }),
    parseOptions: {
      trustedHops: config.request.trustedHops,
      maxHeaderBytes: config.request.maxHeaderBytes,
    },
  };
}

/**
 * Back-channel logout POSTed by the provider straight to the HTTP listener. Every app that
 * listens on the path and is the client the token names ends its sessions.
 */
function createDirectLogoutRoute(
  apps: () => readonly AppRuntime[],
  now: () => number,
  logger: Logger,
): DirectRoute {
  return async ({ id, method, path, body }) => {
    if (
      method !== 'POST' ||
      !apps().some((app) => app.config.oidc.backchannelLogoutPath === path)
    ) {
      return undefined;
    }
    const token = logoutTokenFrom(body);
    const targets = token === undefined ? [] : appsForLogoutToken(apps(), path, token);
    let result: ProviderLogoutResult = token === undefined ? missingToken : invalidToken;
    for (const app of targets) {
      result = await backchannelLogout(app, token!, now);
      if (result.status !== 200) break;
    }
    if (result.error !== undefined) {
      logger.info(
        {
          requestId: id,
          path,
          reason: result.error.description,
          ...(result.detail === undefined ? {} : { detail: result.detail }),
        },
        'provider logout refused',
      );
    } else {
      logger.info(
        { requestId: id, path, apps: targets.map((app) => app.name) },
        'provider logout accepted',
      );
    }
    const reply = providerLogoutReply(result);
    return { status: reply.status, headers: Object.fromEntries(reply.headers), body: reply.body };
  };
}

/**
 * The upstream assertion keys as a JWK Set (RFC 7517 §5) at `/.well-known/jwks.json`, for
 * upstreams that reach the HTTP listener directly or through an Envoy route to it. Envoy's
 * `http_service` reads any 200 as an allow: should a Check for that very path ever arrive here,
 * the answer also names every identity header of every app for removal, so the request would go
 * on like one to a public path, with no identity.
 */
function createJwksRoute(keys: AssertionKeyring, apps: () => readonly AppRuntime[]): DirectRoute {
  return ({ method, path }) => {
    if (path !== JWKS_PATH || (method !== 'GET' && method !== 'HEAD') || keys.empty) {
      return Promise.resolve(undefined);
    }
    const removals = [...new Set(apps().flatMap((app) => app.identityRemovals.all.names))].join(
      ', ',
    );
    return Promise.resolve({
      status: 200,
      headers: {
        'content-type': 'application/jwk-set+json',
        'cache-control': 'max-age=60',
        ...(removals === '' ? {} : { 'x-envoy-auth-headers-to-remove': removals }),
      },
      body: method === 'HEAD' ? '' : JSON.stringify(keys.jwks()),
    });
  };
}

/** `first`'s reply, else `second`'s. */
function firstRoute(first: DirectRoute, second: DirectRoute): DirectRoute {
  return async (request) => (await first(request)) ?? second(request);
}

/** One probe per app: ready once its provider's discovery has answered. */
function discoveryProbes(apps: readonly AppRuntime[], health: HealthState): ReadinessProbe[] {
  return apps.map((app) => {
    app.oidc.ready.then(
      () => health.refresh(),
      () => undefined,
    );
    return {
      name: `app:${app.name}`,
      waitingFor: () => {
        const status = app.oidc.status();
        if (status.state === 'ready') return undefined;
        const what = status.state === 'misconfigured' ? 'misconfigured' : 'discovery';
        return `${what} at ${status.issuer}: ${status.lastError ?? 'waiting'}`;
      },
    };
  });
}

/**
 * How long one store call may hold a Check: half its budget, so a Check that finds the store
 * hung still has time to fall back (or answer 503) and decide; never longer than the command
 * timeout the connection itself applies.
 */
export function storeCallTimeoutMs(budgetMs: number, commandTimeoutMs: number): number {
  return Math.max(1, Math.min(commandTimeoutMs, Math.floor(budgetMs / 2)));
}

/**
 * How long `WAIT` may wait for replicas: `replicaAcks.timeout`, but short enough that its "too
 * few replicas" answer comes within the store call's own timeout (else the call times out first,
 * and the store cannot tell a missing replica from a hung master).
 */
export function replicaAcksTimeoutMs(configuredMs: number, callTimeoutMs: number): number {
  return Math.max(1, Math.min(configuredMs, callTimeoutMs - 10));
}

/** The tracer `tracing` asks for: {@link noTracer} when off, else one exporting over OTLP/HTTP. */
function buildTracer(
  tracing: Config['tracing'],
  deps: { readonly logger: Logger; readonly metrics: Metrics; readonly now: () => number },
): Tracer {
  if (!tracing.enabled) return noTracer;
  const exporter = createOtlpExporter(
    {
      endpoint: tracing.endpoint,
      headers: tracing.headers,
      serviceName: tracing.serviceName,
      exportTimeoutMs: tracing.exportTimeout,
      flushIntervalMs: tracing.flushInterval,
      maxQueueSize: tracing.maxQueueSize,
      maxBatchSize: tracing.maxBatchSize,
    },
    {
      logger: deps.logger,
      dropped: (reason, count) => deps.metrics.traceSpansDropped(reason, count),
      now: deps.now,
    },
  );
  return createTracer({ sampleRate: tracing.sampleRate }, { exporter });
}

function listen(server: NetServer, address: string): Promise<number> {
  const { host, port } = hostPortOf(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<ServerHandle> {
  const logger =
    options.logger ??
    createLogger({
      level: config.log.level,
      ...(options.logDestination === undefined ? {} : { destination: options.logDestination }),
    });
  const metrics = new Metrics();
  const health = new HealthState();
  const now = options.now ?? Date.now;
  // The Redis client (ioredis: a sixth of the module loading at startup) is loaded only for a
  // Redis store; the store type changes only on restart, so no reload needs it otherwise.
  const redisModule =
    config.store.type === 'redis' ? await import('./store/redis-backend.ts') : undefined;
  const buildRedis = (next: Config): RedisBackend => {
    if (redisModule === undefined) throw new Error('the Redis store was not configured at start');
    return redisModule.createRedisBackend(next.store.redis, {
      logger,
      // Readiness names refused credentials as soon as Redis refuses them, not at the next call.
      onCredentialsChange: () => health.refresh(),
      // Back on Redis (after an outage or a Sentinel failover): the store breaker probes now
      // rather than at the end of its resetTimeout, so server sessions are served again at once.
      // (A connection is lost, and made again, only after `breakers` below exists.)
      onReconnect: () => breakers.store.probeNow(),
      ...(next.store.redis.replicaAcks === undefined
        ? {}
        : {
            replicaAcks: {
              replicas: next.store.redis.replicaAcks.replicas,
              timeoutMs: replicaAcksTimeoutMs(
                next.store.redis.replicaAcks.timeout,
                storeCallTimeoutMs(next.request.budget, next.store.redis.commandTimeout),
              ),
            },
          }),
    });
  };
  // Behind a switch, so a reload with new connection settings or credentials moves to a new
  // connection without dropping a call (see `switchStore`).
  const redis = config.store.type === 'redis' ? switchableBackend(buildRedis(config)) : undefined;
  const breakers = createBreakers({
    registry: metrics.registry,
    logger,
    store: config.breakers.store,
    idp: config.breakers.idp,
    ...(redis === undefined ? {} : { storeProbe: () => redis.ping() }),
    now,
  });
  let current = config;
  let tracer = buildTracer(config.tracing, { logger, metrics, now });
  const store =
    redis === undefined
      ? memoryStore(now)
      : redisStore(
          timeStoreCalls(redis, (operation, seconds, error) => {
            metrics.storeCommandFinished(operation, seconds);
            tracer.storeCall(operation, seconds, error);
          }),
          breakers.store,
          {
            logger,
            registry: metrics.registry,
            probe: () => redis.ping(),
            // A reload may change the budget and the command timeout; the call timeout follows.
            callTimeoutMs: () =>
              storeCallTimeoutMs(current.request.budget, current.store.redis.commandTimeout),
            // Server sessions live only in the store: a server whose credentials Redis refuses
            // cannot serve them, and says so, so a rollout with a wrong password stops there.
            waitingFor: () => {
              const refused = redis.credentialsRefused();
              const mandatory = current.apps.some((app) => app.session.store === 'server');
              return mandatory && refused !== undefined
                ? `redis refuses the credentials: ${refused}`
                : undefined;
            },
          },
        );
  breakers.store.onStateChange(() => health.refresh());
  const services: Services = {
    logger,
    now,
    store,
    breakers,
    metrics,
    tracer: () => tracer,
    providers: new Map(),
    oidcClients: new Map(),
    assertionKeys: new AssertionKeyring(now, logger),
    // A store no other process writes to is revoked only through this process (SPEC §11).
    revocationTrusts: new RevocationTrusts(now, store.local),
  };
  const runtime = buildRuntime(config, services);
  const authorizer = new Authorizer(
    runtime,
    metrics,
    logger,
    createAccessLog(config.log.access, logger),
    tracer,
  );

  const listenTls =
    config.listen.tls === undefined ? undefined : listenerTlsOptions(config.listen.tls);
  const grpcServer = createGrpcServer({
    protos: loadProtos(),
    authorizer,
    health,
    logger,
    limits: config.limits.grpc,
    tls: listenTls,
  });
  let apps = runtime.apps;
  const httpServer = createHttpServer({
    authorizer,
    logger,
    pathPrefix: config.listen.httpPathPrefix,
    direct: firstRoute(
      createJwksRoute(services.assertionKeys, () => apps),
      createDirectLogoutRoute(() => apps, now, logger),
    ),
    maxHeaderBytes: config.request.maxHeaderBytes,
    tls: listenTls,
  });
  const adminServer = createAdminServer(health, metrics, logger);

  const ports = {
    grpc: await listen(grpcServer.server, config.listen.grpc),
    http: await listen(httpServer, config.listen.http),
    admin: await listen(adminServer, config.listen.admin),
  };
  const storeProbe: ReadinessProbe = { name: 'store', waitingFor: () => store.waitingFor() };
  health.setProbes([storeProbe, ...discoveryProbes(runtime.apps, health)]);
  let stopProbes = startProviderProbes(services.providers.values());
  metrics.setReady('config', true);
  // Read at scrape time: discovery held and its breaker not open (the last probe answered);
  // the store connected and not degraded to memory.
  metrics.watchReadiness(function* () {
    for (const app of apps) {
      const breaker = services.providers.get(providerKey(app.config))?.discoveryBreaker;
      const discovered = app.oidc.status().state === 'ready' && breaker?.state() !== 'open';
      yield [`discovery:${app.name}`, discovered];
    }
    if (redis !== undefined) yield ['store', redis.status() === 'ready' && !store.degraded()];
  });
  logger.info({ ports, apps: config.apps.map((a) => a.name) }, 'serving');

  let closing: Promise<void> | undefined;
  let endDelay: (() => void) | undefined;
  /** A connection built by a reload, not yet switched to; `cancel` abandons it. */
  let pendingStore: { readonly cancel: () => void } | undefined;
  return {
    ports,
    health,
    metrics,
    logger,
    authorizer,
    revokeBearerToken(app: string, jti: string, expiresAt: number): Promise<void> {
      const runtime = apps.find((candidate) => candidate.name === app);
      if (runtime === undefined) return Promise.reject(new Error(`no app named ${app}`));
      if (runtime.bearer === undefined) {
        return Promise.reject(new Error(`app ${app} does not accept bearer tokens`));
      }
      return runtime.bearer.revocations.revoke(jti, expiresAt);
    },
    reload(next: Config): void {
      if (closing !== undefined) {
        // Shutting down: providers and probes are being stopped, nothing new may start.
        logger.warn({}, 'reload ignored: the server is shutting down');
        return;
      }
      const moved = (['grpc', 'http', 'admin'] as const).filter(
        (k) => next.listen[k] !== current.listen[k],
      );
      if (moved.length > 0)
        logger.warn({ listeners: moved }, 'listen addresses change only on restart');
      if (JSON.stringify(next.limits) !== JSON.stringify(current.limits))
        logger.warn({}, 'transport limits change only on restart');
      if (JSON.stringify(next.log.access) !== JSON.stringify(current.log.access))
        logger.warn({}, 'log.access changes only on restart');
      applyListenTls(current.listen.tls, next.listen.tls);
      applyLogLevel(next.log.level);
      const breakersNeedRestart = breakers.retune(next.breakers.store, next.breakers.idp);
      if (breakersNeedRestart.length > 0)
        logger.warn({ keys: breakersNeedRestart }, 'these breaker settings change only on restart');
      applyStore(current, next);
      applyTracing(current.tracing, next.tracing);
      const rebuilt = buildRuntime(next, services);
      authorizer.replace(rebuilt);
      apps = rebuilt.apps;
      health.setProbes([storeProbe, ...discoveryProbes(rebuilt.apps, health)]);
      stopProbes();
      stopProbes = startProviderProbes(services.providers.values());
      current = next;
      metrics.configReloaded(true);
      logger.info({ apps: next.apps.map((a) => a.name) }, 'configuration reloaded');
    },
    close(): Promise<void> {
      if (closing !== undefined) {
        if (endDelay !== undefined) logger.info({}, 'drain delay cut short');
        endDelay?.();
        return closing;
      }
      health.startDraining();
      const { drainDelay, drainTimeout } = current.shutdown;
      logger.info({ drainDelayMs: drainDelay, drainTimeoutMs: drainTimeout }, 'draining');
      const delayed = new Promise<void>((resolve) => {
        const timer = setTimeout(() => endDelay?.(), drainDelay);
        endDelay = () => {
          endDelay = undefined;
          clearTimeout(timer);
          resolve();
        };
      });
      closing = delayed.then(() => stopAccepting(drainTimeout));
      return closing;
    },
  };

  /** The new `log.level`, for this logger and every child logger made from it. */
  function applyLogLevel(level: Config['log']['level']): void {
    // Only the logger built here: one handed in by the caller keeps the caller's level.
    if (options.logger !== undefined || logger.level === level) return;
    (logger as { level: string }).level = level;
    logger.info({ logLevel: level }, 'log level changed');
  }

  /**
   * New connection settings or credentials for Redis: a new connection is made next to the one
   * serving, and calls switch to it once it is ready (authenticated); the old one then answers
   * what it already took and closes. Until then the old connection keeps serving, so a rotation
   * never fails a call, and new credentials Redis refuses leave a loud error and the old
   * connection in service (it keeps trying the new one, so fixing Redis finishes the switch).
   */
  function applyStore(was: Config, next: Config): void {
    if (next.store.type !== was.store.type) {
      logger.warn(
        { keys: ['store.type'], from: was.store.type, to: next.store.type },
        'the store type changes only on restart',
      );
      return;
    }
    if (redis === undefined) return;
    if (JSON.stringify(next.store.redis) === JSON.stringify(was.store.redis)) return;
    pendingStore?.cancel();
    const candidate = buildRedis(next);
    let cancelled = false;
    const pending = {
      cancel: () => {
        cancelled = true;
        void candidate.close();
      },
    };
    pendingStore = pending;
    const log = logger.child({ component: 'store' });
    log.info({}, 'store settings changed: connecting with the new ones');
    const attempt = (reported: boolean): void => {
      candidate.ready().then(
        () => {
          if (cancelled) return;
          pendingStore = undefined;
          redis.switchTo(candidate).then(
            () => log.info({}, 'store now uses the new settings; the old connection is closed'),
            () => undefined,
          );
        },
        (error: unknown) => {
          if (cancelled) return;
          if (!reported) {
            log.error(
              { error: error instanceof Error ? error.message : String(error) },
              'the new store settings do not connect yet: still using the previous connection',
            );
          }
          attempt(true);
        },
      );
    };
    attempt(false);
  }

  /**
   * New `tracing` settings: a new tracer for the next Checks; the old one sends what it holds
   * (and the spans of Checks still running on it) and stops.
   */
  function applyTracing(was: Config['tracing'], next: Config['tracing']): void {
    if (JSON.stringify(next) === JSON.stringify(was)) return;
    const previous = tracer;
    tracer = buildTracer(next, { logger, metrics, now });
    authorizer.replaceTracer(tracer);
    void previous.close();
    logger.info({ tracing: next.enabled ? 'on' : 'off' }, 'tracing settings applied');
  }

  /** New certificate, key or client CA for the listeners' next handshakes. */
  function applyListenTls(was: ListenTls | undefined, next: ListenTls | undefined): void {
    const restart = tlsChangeNeedsRestart(was, next);
    if (restart !== undefined) {
      logger.warn({ change: restart }, 'listener TLS changes only on restart');
      return;
    }
    if (next === undefined || JSON.stringify(next) === JSON.stringify(was)) return;
    const context = listenerSecureContext(next);
    grpcServer.setSecureContext(context);
    if (httpServer instanceof HttpsServer) httpServer.setSecureContext(context);
    logger.info({}, 'listener certificate reloaded');
  }

  async function stopAccepting(drainTimeout: number): Promise<void> {
    logger.info({}, 'no longer accepting');
    await grpcServer.shutdown(drainTimeout);
    await Promise.all([closeHttp(httpServer), closeHttp(adminServer)]);
    await tracer.close();
    stopProbes();
    for (const { provider } of services.providers.values()) provider.close();
    breakers.shutdown();
    pendingStore?.cancel();
    await store.close();
    logger.info({}, 'stopped');
  }
}
