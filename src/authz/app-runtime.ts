/** An app as the pipeline uses it: its config plus everything built from it once, at start. */
import type { AppConfig } from '../config/schema.ts';
import { DEFAULT_UPSTREAM_HEADERS } from '../config/schema.ts';
import type { OidcClient } from '../oidc/oidc-client.ts';
import type { RefreshCoordinator } from '../oidc/refresh-coordinator.ts';
import type { Sessions } from '../session/sessions.ts';
import type { SessionRevocations } from '../session/session-revocations.ts';
import type { Keyspace } from '../store/keyspace.ts';
import type { Mark } from '../store/keyspaces.ts';
import type { SubjectLabel } from '../observability/subject-label.ts';
import { EndpointPaths } from '../policy/endpoint-paths.ts';
import { PublicPaths } from '../policy/public-paths.ts';
import type { BearerRuntime } from './bearer-runtime.ts';
import { compileDynamicMetadata, type DynamicMetadata } from './dynamic-metadata.ts';
import { compileIdentityHeaders, type IdentityHeaders } from './identity-headers.ts';
import { IdentityRemovals } from './identity-removals.ts';
import type { LoginMetrics } from './login-outcome.ts';
import type { RequestModel } from './request.ts';
import type { UpstreamAssertion } from './upstream-assertion.ts';
import { compileRules, type AuthorizationRules } from './rules.ts';
import { compileStepUp, type StepUpPolicy } from './step-up.ts';

export interface AppRuntime {
  readonly name: string;
  readonly match: AppConfig['match'];
  readonly config: AppConfig;
  readonly publicPaths: PublicPaths;
  /** The callback and logout paths, matched on the exact raw path. */
  readonly endpoints: EndpointPaths;
  readonly headers: IdentityHeaders;
  /** `dynamicMetadata`, rendered beside the identity headers. */
  readonly dynamicMetadata: DynamicMetadata;
  /** `upstreamAssertion`: the signer; `undefined` when the app sends none. */
  readonly assertion: UpstreamAssertion | undefined;
  /**
   * Every header this app may set upstream, removed from each incoming request in any spelling
   * that folds to it, so a client can never forge one (SPEC §4.3). The default identity headers
   * are in it even when the app turns one off: an upstream written for the defaults must never
   * trust a forged copy.
   */
  readonly identityRemovals: IdentityRemovals;
  readonly rules: AuthorizationRules;
  /** What each path demands of the login behind a session (`acrValues`, `maxAge`). */
  readonly stepUp: StepUpPolicy;
  readonly oidc: OidcClient;
  readonly refresher: RefreshCoordinator;
  readonly sessions: Sessions;
  readonly revocations: SessionRevocations;
  /** Back-channel logout token ids already used, shared by every replica. */
  readonly logoutTokenReplay: Keyspace<string, Mark>;
  /** Counts each callback by how it ended (`eoa_logins_total`). */
  readonly logins: LoginMetrics;
  /** What log lines show of a user's `sub` (`log.subject`). */
  readonly subjectLabel: SubjectLabel;
  /** Bearer tokens for machine clients (SPEC §8); `undefined` when `bearer.enabled` is false. */
  readonly bearer: BearerRuntime | undefined;
  /**
   * While the provider is known to be down (its discovery or token breaker is open): the
   * seconds until it is worth trying again; `undefined` when it is believed up.
   */
  idpDownFor(): number | undefined;
}

export type AppServices = Pick<
  AppRuntime,
  | 'oidc'
  | 'refresher'
  | 'sessions'
  | 'revocations'
  | 'logoutTokenReplay'
  | 'idpDownFor'
  | 'bearer'
  | 'logins'
  | 'subjectLabel'
  | 'assertion'
>;

export function buildAppRuntime(config: AppConfig, services: AppServices): AppRuntime {
  const headers = compileIdentityHeaders(config);
  const identityRemovals = new IdentityRemovals([
    ...Object.keys(DEFAULT_UPSTREAM_HEADERS),
    ...headers.names,
    ...(services.assertion === undefined ? [] : [services.assertion.header]),
  ]);
  return {
    ...services,
    name: config.name,
    match: config.match,
    config,
    publicPaths: new PublicPaths(config.publicPaths),
    // An API-only app answers no callback or logout path: they reach its upstream as any path.
    endpoints: new EndpointPaths(config.browserLogin ? config.oidc : {}),
    headers,
    dynamicMetadata: compileDynamicMetadata(config),
    identityRemovals,
    rules: compileRules(config.authorization, config.oidc.clientId ?? ''),
    stepUp: compileStepUp(config.authorization),
  };
}

/**
 * The app's identity headers the incoming request carries, in any spelling that folds to one
 * (`X_Auth_Request_User`), except those about to be set (a set overwrites): the ones to remove
 * before forwarding. Removing a header that is absent changes nothing, so only present ones go
 * into `removeHeaders`; the absent ones HTTP mode cannot see are in `identityRemovals`.
 */
export function headersToScrub(
  app: AppRuntime,
  request: Pick<RequestModel, 'headers' | 'underscoredHeaders'>,
  setNames?: ReadonlySet<string>,
): readonly string[] {
  return app.identityRemovals.forgedIn(request.headers, request.underscoredHeaders, setNames);
}
