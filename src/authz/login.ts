/** Login (SPEC §4.5, §4.9): send a browser to the provider, and finish the flow at the callback. */
import {
  AuthzError,
  IdpError,
  IdpUnavailableError,
  SessionTooLargeError,
  TokenInvalidError,
} from '../errors.ts';
import { createLoginSecrets } from '../oidc/pkce.ts';
import { resolveSecure } from '../session/cookie-jar.ts';
import type { LoginAnswer } from '../session/login-state.ts';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../clock.ts';
import { loginOutcomeOf, type LoginOutcome } from './login-outcome.ts';
import { htmlPage, retryPage } from './pages.ts';
import type { Step, StepContext, StepDeps } from './pipeline.ts';
import { sessionTooLarge } from './session-too-large.ts';
import { isBrowserNavigation, isGrpcCaller } from './request-kind.ts';
import { redirectUriFor, returnPathOf, sameOriginUrl } from './request-urls.ts';
import {
  jsonReply,
  redirect,
  setCookies,
  type HeaderPair,
  type PageContent,
  type Verdict,
} from './verdict.ts';
import { readRequestPath } from '../policy/request-path.ts';
import {
  combineDemands,
  insufficientAuthenticationChallenge,
  shortfallOf,
  stepUpParams,
  type StepUpDemand,
} from './step-up.ts';

/** Whether cookies for this request are Secure (and so `__Host-` prefixed). */
export function secureFor(context: StepContext): boolean {
  return resolveSecure(
    context.app.config.session.secure,
    context.request.scheme,
    context.request.host,
  );
}

/**
 * A 302 to the provider's authorization endpoint with state, nonce and PKCE S256, and a
 * login-state cookie for this flow. `extraCookies` are lines to send along (e.g. expiring a
 * dead session cookie). With pushed authorization requests (`oidc.par`) the parameters are
 * pushed to the provider first and the 302 carries only `client_id` and `request_uri`: then a
 * promise, rejected (and no login state set) when the provider fails the push (503 with
 * `Retry-After`) or refuses it (the login error page); the authorizer logs either, once.
 */
export function startLogin(
  context: StepContext,
  extraCookies: readonly string[] = [],
): Verdict | Promise<Verdict> {
  const { request, app } = context;
  // Never send a browser to a provider known to be down: it would only come back to a loop.
  const downFor = app.idpDownFor();
  if (downFor !== undefined) {
    throw new IdpUnavailableError('authorization', 'circuit_open', { retryAfterSeconds: downFor });
  }
  const loginStates = app.sessions.loginStates;
  const secrets = createLoginSecrets((n) => loginStates.random(n));
  // A path that demands an `acr` or a recent login asks for it at every login, not only at a
  // step-up: the callback refuses a login that does not meet it.
  const demand = app.stepUp.demandFor(request.method, context.path);
  const params = {
    redirectUri: redirectUriFor(request, app.config.oidc.callbackPath),
    state: secrets.state,
    nonce: secrets.nonce,
    codeChallenge: secrets.codeChallenge,
    ...(demand === undefined ? {} : { extraAuthParams: stepUpParams(demand) }),
  };
  const redirectTo = (location: string): Verdict => {
    const cookies = loginStates.start(
      {
        state: secrets.state,
        nonce: secrets.nonce,
        codeVerifier: secrets.codeVerifier,
        returnTo: returnPathOf(request),
      },
      request.cookies,
      secureFor(context),
    );
    return redirect('login', location, [
      ['cache-control', 'no-store'],
      ...setCookies(extraCookies),
      ...setCookies(cookies),
    ]);
  };
  if (app.oidc.pushesAuthorization()) return app.oidc.pushAuthorization(params).then(redirectTo);
  return redirectTo(app.oidc.authorizationLocation(params));
}

/** The `error` codes of an authorization response: RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6. */
const knownAuthorizationErrors: ReadonlySet<string> = new Set([
  'invalid_request',
  'unauthorized_client',
  'access_denied',
  'unsupported_response_type',
  'invalid_scope',
  'server_error',
  'temporarily_unavailable',
  'interaction_required',
  'login_required',
  'account_selection_required',
  'consent_required',
  'invalid_request_uri',
  'invalid_request_object',
  'request_not_supported',
  'request_uri_not_supported',
  'registration_not_supported',
]);

/** What a browser is told when its callback's state cannot complete a login. */
const stateProblems = {
  missing: 'This sign-in response does not belong to a sign-in started in this browser.',
  expired: 'This sign-in took too long and has expired.',
  future: 'This sign-in could not be checked because the clocks of our servers disagree.',
  replayed: 'This sign-in response was already used.',
  unfinished: 'This sign-in could not be finished.',
} as const;

/** What is logged about a refused state; `future` names the clocks, the only fix there is. */
const stateProblemLogs = {
  missing: 'sign-in response without a matching login state',
  expired: 'sign-in response for a login state that took too long',
  future: 'the login state was issued in the future: check the clocks of the replicas',
  replayed: 'sign-in response for a login state already used',
  unfinished: 'sign-in response for a login state whose code was spent without a session',
} as const;

/**
 * The callback (SPEC §4.5): state checked against this browser's login-state cookie and claimed
 * (see `LoginStates.take`), the code exchanged with the PKCE verifier, the ID token validated,
 * the session created, and the browser sent back to where it started — on this origin only. A
 * transient failure (provider or store outage: 503 with `Retry-After`) releases the claim and
 * keeps the cookie, so reloading the callback URL tries again; a completed login marks the
 * state used on every replica. A session too large for the cookie store gets a readable 431
 * (logged), never a failed Check.
 */
export function createCallbackStep({ logger, now }: StepDeps): Step {
  return function handleCallback(context: StepContext): Promise<Verdict> | undefined {
    if (!context.app.endpoints.is('callback', context.path)) return undefined;
    return finishLogin(context, logger, now).catch((error: unknown) => {
      // A failure with no page of its own (an outage: 503 from the authorizer, or a bug).
      context.app.logins.finished(loginOutcomeOf(error));
      throw error;
    });
  };
}

async function finishLogin(context: StepContext, logger: Logger, now: Clock): Promise<Verdict> {
  const { request, app } = context;
  const started = now();
  const query = new URLSearchParams(request.query);
  const secure = secureFor(context);
  const state = query.get('state') ?? '';
  const loginStates = app.sessions.loginStates;
  const code = query.get('code') ?? undefined;
  const taken = await loginStates.take(request.cookies, state, secure, code);
  const cleanup = setCookies(taken.setCookie);
  if (taken.kind === 'completed') {
    logger.info(
      { requestId: request.id, app: app.name },
      'sign-in response retried after the login completed: answered as before',
    );
    return loggedIn(taken.answer, cleanup);
  }

  const error = query.get('error');
  if (error !== null) {
    if (taken.kind === 'ok') await settle(loginStates.release(taken));
    // Anyone can send a browser to the callback with an `error` of their choosing, state or not:
    // only a code RFC 6749 §4.1.2.1 or OIDC Core §3.1.2.6 defines is shown, and the free-text
    // `error_description` never is (our origin would vouch for an attacker's words).
    const code = knownAuthorizationErrors.has(error) ? error : undefined;
    app.logins.finished('provider_refused');
    loginFailed(
      logger,
      context,
      'provider_refused',
      { error: code ?? 'unknown', state: taken.kind },
      'sign-in refused by the identity provider',
    );
    return htmlPage(
      'callback_error',
      401,
      'Sign-in was not completed',
      code === undefined
        ? 'The identity provider did not complete the sign-in.'
        : `The identity provider answered: ${code}.`,
      cleanup,
      taken.kind === 'ok' ? sameOriginUrl(request, taken.login.returnTo) : undefined,
    );
  }
  if (taken.kind === 'in_progress') {
    logger.info(
      { requestId: request.id, app: app.name, state: taken.kind },
      'sign-in response while another request completes the same login',
    );
    // The cookie stays: a reload once the other request is done is answered as that one ended
    // (the state used, or free again after an exchange that did not go through).
    return retryPage(
      'callback',
      409,
      1,
      'Sign-in in progress',
      'This sign-in is being completed by another request. This page reloads in a moment.',
      cleanup,
    );
  }
  if (taken.kind !== 'ok') {
    const fields: Record<string, unknown> = { state: taken.kind };
    // How far off the flow's own clock was, so an operator can tell skew from a slow user.
    if (taken.createdAt !== undefined) fields['ageMs'] = now() - taken.createdAt;
    const outcome = taken.kind === 'future' ? 'clock_skew' : 'state';
    app.logins.finished(outcome);
    loginFailed(logger, context, outcome, fields, stateProblemLogs[taken.kind]);
    return htmlPage(
      'callback',
      taken.kind === 'unfinished' ? 401 : 400,
      'Sign-in could not be completed',
      stateProblems[taken.kind],
      cleanup,
    );
  }

  let exchanged;
  try {
    exchanged = await app.oidc.exchangeCode({
      params: query,
      redirectUri: redirectUriFor(request, app.config.oidc.callbackPath),
      codeVerifier: taken.login.codeVerifier,
      expectedState: taken.login.state,
      expectedNonce: taken.login.nonce,
    });
  } catch (failure) {
    // No session came of it. Before the code was spent the state may be tried again; once it
    // was (the grant went through, and the provider's keys or userinfo did not), a retry is
    // told to start again rather than replay a spent code the provider refuses.
    const spent =
      failure instanceof AuthzError &&
      'endpoint' in failure &&
      typeof failure.endpoint === 'string' &&
      AFTER_THE_GRANT.has(failure.endpoint);
    await settle(spent ? loginStates.abandon(taken) : loginStates.release(taken));
    // An outage is a 503 (with Retry-After) from the authorizer, and the login-state cookie
    // stays for the browser's retry; anything else ends this flow.
    if (!(failure instanceof AuthzError) || failure.code === 'IDP_UNAVAILABLE') throw failure;
    const outcome = loginOutcomeOf(failure);
    app.logins.finished(outcome);
    loginFailed(logger, context, outcome, refusalFields(failure), 'sign-in response not accepted');
    return htmlPage(
      'callback',
      401,
      'Sign-in could not be completed',
      'The sign-in response was not accepted.',
      cleanup,
      sameOriginUrl(request, taken.login.returnTo),
    );
  }

  const { tokens, claims, sessionClaims } = exchanged;
  const demand = callbackDemand(context, taken.login.returnTo);
  const shortfall =
    demand === undefined
      ? undefined
      : shortfallOf(claims, demand, now(), app.config.oidc.clockSkew);
  if (shortfall !== undefined) {
    // The code is spent: a retry of this callback is told to start again, never exchanged.
    await settle(loginStates.abandon(taken));
    logger.warn(
      { requestId: request.id, app: app.name, shortfall },
      'sign-in does not meet the authentication the page demands (acrValues, maxAge or max_age)',
    );
    return htmlPage(
      'callback',
      401,
      'Sign-in could not be completed',
      'This sign-in does not meet the authentication this page requires.',
      cleanup,
      sameOriginUrl(request, taken.login.returnTo),
    );
  }
  const sid = typeof claims['sid'] === 'string' ? claims['sid'] : undefined;
  let written;
  try {
    written = await app.sessions.create(
      {
        sub: String(claims['sub']),
        ...(sid === undefined ? {} : { sid }),
        claims: sessionClaims,
        tokens: {
          accessToken: tokens.accessToken,
          expiresAt: tokens.expiresAt,
          idToken: tokens.idToken,
          ...(tokens.refreshToken === undefined ? {} : { refreshToken: tokens.refreshToken }),
        },
      },
      request.cookies,
      secure,
    );
  } catch (failure) {
    // The code is spent: a retry of this callback is told to start again, never exchanged.
    await settle(loginStates.abandon(taken));
    if (!(failure instanceof SessionTooLargeError)) throw failure;
    app.logins.finished('session_too_large');
    return sessionTooLarge(context, failure, logger, taken.setCookie);
  }
  const answer: LoginAnswer = {
    location: sameOriginUrl(request, taken.login.returnTo),
    setCookie: [...taken.setCookie, ...written.setCookie],
  };
  // Kept with the used mark: should this answer not reach the browser (the Check ran out of its
  // budget meanwhile), the browser's retry of this callback gets it from any replica.
  await settle(loginStates.complete(taken, code === undefined ? undefined : { code, answer }));
  app.logins.finished('ok');
  logger.info(
    {
      requestId: request.id,
      app: app.name,
      sub: app.subjectLabel(String(claims['sub'])),
      durationMs: now() - started,
    },
    'signed in',
  );
  return loggedIn(answer, []);
}

/**
 * The one line of a failed callback: its cause as `eoa_logins_total{outcome}` counts it, and what
 * else is known. An outage (503) is not logged here: the authorizer logs it, once.
 */
function loginFailed(
  logger: Logger,
  context: StepContext,
  outcome: LoginOutcome,
  fields: Record<string, unknown>,
  msg: string,
): void {
  logger.warn({ requestId: context.request.id, app: context.app.name, outcome, ...fields }, msg);
}

/** What a refused code exchange tells the operator: the error's detail and a hint where known. */
function refusalFields(failure: AuthzError): Record<string, unknown> {
  const fields: Record<string, unknown> = { code: failure.code, detail: failure.message };
  if (failure instanceof IdpError) {
    if (failure.httpStatus !== undefined) fields['status'] = failure.httpStatus;
    const hint = failure.hint ?? tokenEndpointHints[failure.oauthError];
    if (hint !== undefined) fields['hint'] = hint;
  } else if (failure instanceof TokenInvalidError) {
    fields['check'] = failure.reason;
    const hint = idTokenHint(failure.reason);
    if (hint !== undefined) fields['hint'] = hint;
  }
  return fields;
}

/** Hints for the token endpoint's commonest refusals of a code (RFC 6749 §5.2). */
const tokenEndpointHints: Readonly<Record<string, string>> = {
  invalid_client:
    "the provider refused this client's credentials: check oidc.clientId, oidc.clientSecret and oidc.clientAuth against the client registered at the provider",
  unauthorized_client:
    'the client is not allowed the authorization_code grant at the provider: check its registration',
  invalid_grant:
    'the code was refused: already used, expired, or issued for another redirect_uri (check the registered redirect URIs against oidc.callbackPath)',
};

/** A hint for an ID token refused by `reason` (jose's code or a check's name), where one is known. */
function idTokenHint(reason: string): string | undefined {
  if (/ALG_NOT_ALLOWED|\balg\b/i.test(reason)) {
    return 'the provider signs ID tokens with an algorithm oidc.idTokenAlgs does not allow: align the two';
  }
  if (/SIGNATURE/i.test(reason)) {
    return "the signature does not verify with the provider's published keys (jwks_uri)";
  }
  if (/EXPIRED|"(exp|nbf|iat)"/i.test(reason)) {
    return 'check the clocks of this server and the provider, or oidc.clockSkew';
  }
  if (/"iss"/.test(reason)) return "check oidc.issuer: it must equal the provider's issuer exactly";
  if (/"aud"|\bazp\b/.test(reason)) {
    return 'check oidc.clientId: the ID token was issued to another client';
  }
  return undefined;
}

/** The provider calls of a code exchange that run once the code is spent. */
const AFTER_THE_GRANT: ReadonlySet<string> = new Set(['jwks', 'id_token', 'userinfo']);

/** The end of a login: back to where it started, with the session's cookies. */
function loggedIn(answer: LoginAnswer, extra: readonly HeaderPair[]): Verdict {
  return redirect('callback', answer.location, [
    ['cache-control', 'no-store'],
    ...extra,
    ...setCookies(answer.setCookie),
  ]);
}

/**
 * Waits for a login-state mark to be written. The marks live in the degradable store, which
 * falls back to memory rather than fail; should one still fail, the claim expires by itself
 * (`LOGIN_CLAIM_TTL_MS`), and the request's own outcome is what matters.
 */
async function settle(marking: Promise<void>): Promise<void> {
  try {
    await marking;
  } catch {
    // See above: nothing to undo, nothing the browser could act on.
  }
}

/**
 * What the login's ID token must meet at the callback: the demand of the page it returns to
 * (read as a GET of that path), and a `max_age` sent through `oidc.extraAuthParams` (OIDC Core
 * §3.1.2.1: the RP checks `auth_time` when it sent `max_age`).
 */
function callbackDemand(context: StepContext, returnTo: string): StepUpDemand | undefined {
  const { app } = context;
  const demands: { acrValues: readonly string[]; maxAge?: number }[] = [];
  const query = returnTo.indexOf('?');
  const path = readRequestPath(query === -1 ? returnTo : returnTo.slice(0, query));
  if ('readings' in path) {
    const demand = app.stepUp.demandFor('GET', path);
    if (demand !== undefined) {
      demands.push({
        acrValues: demand.acrValues,
        ...(demand.maxAgeMs === undefined ? {} : { maxAge: demand.maxAgeMs }),
      });
    }
  }
  const configured = app.config.oidc.extraAuthParams['max_age'];
  if (configured !== undefined && /^\d{1,10}$/.test(configured)) {
    demands.push({ acrValues: [], maxAge: Number(configured) * 1000 });
  }
  return demands.length === 0 ? undefined : combineDemands(demands);
}

/**
 * A session that does not meet the request's step-up demand (RFC 9470): a browser navigation is
 * sent to log in again with `acr_values`/`max_age`; anything else gets 401 with an
 * `insufficient_user_authentication` challenge. The session is kept (`setCookie` carries a
 * refresh's lines) for paths that demand less.
 */
export function stepUpRequired(
  context: StepContext,
  demand: StepUpDemand,
  setCookie: readonly string[] = [],
): Verdict | Promise<Verdict> {
  const { request, app } = context;
  if (isBrowserNavigation(request)) return startLogin(context, setCookie);
  const headers: HeaderPair[] = [
    ['www-authenticate', insufficientAuthenticationChallenge(app.name, demand)],
    ...setCookies(setCookie),
  ];
  if (isGrpcCaller(request)) headers.push(...grpcUnauthenticated);
  return jsonReply(
    'unauthenticated',
    401,
    'insufficient_user_authentication',
    'a stronger or more recent authentication is required',
    headers,
  );
}

const grpcUnauthenticated: readonly HeaderPair[] = [
  ['grpc-status', '16'],
  ['grpc-message', 'unauthenticated'],
];

/**
 * No usable session (SPEC §4.9): a browser navigation is sent to log in; anything else gets 401
 * with an RFC 6750 challenge and a JSON body (gRPC callers `grpc-status: 16`), never a 302.
 * An API-only app (no client) sends nobody to log in: a browser navigation gets the 401 too, as
 * a page. `setCookie` carries lines that expire a dead session's cookies.
 */
export function unauthenticated(
  context: StepContext,
  setCookie: readonly string[] = [],
): Verdict | Promise<Verdict> {
  const { request, app } = context;
  const browserLogin = app.config.browserLogin;
  if (browserLogin && isBrowserNavigation(request)) return startLogin(context, setCookie);
  const headers: HeaderPair[] = [
    ['www-authenticate', `Bearer realm="${app.name}"`],
    ...setCookies(setCookie),
  ];
  if (isGrpcCaller(request)) headers.push(...grpcUnauthenticated);
  const reply = jsonReply(
    'unauthenticated',
    401,
    'unauthenticated',
    'authentication required',
    headers,
  );
  // An API-only app never redirects: a browser gets the 401 as a page that says why.
  return browserLogin ? reply : { ...reply, page: apiOnlyPage };
}

const apiOnlyPage: PageContent = Object.freeze({
  title: 'Authentication required',
  message: 'This address accepts bearer tokens only: it has no sign-in page.',
});
