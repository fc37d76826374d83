/**
 * Logouts the provider starts: back-channel (OIDC Back-Channel Logout 1.0, a signed
 * `logout_token` POSTed to us) and front-channel (OIDC Front-Channel Logout 1.0, a GET with
 * `iss` and `sid`). Either ends every matching session on every replica sharing the store.
 */
import { decodeJwt, type JWTPayload } from 'jose';
import { AuthzError, clientErrorCode, type ClientErrorCode } from '../errors.ts';
import { sha256Base64url } from '../digest.ts';
import type { AppRuntime } from './app-runtime.ts';
import type { Step, StepContext, StepDeps } from './pipeline.ts';
import { localReply, type HeaderPair, type Verdict } from './verdict.ts';

/** The answer to the provider. */
export interface ProviderLogoutResult {
  /** 200, 400 for a refused request, or the status of the failure that stopped it (503). */
  readonly status: number;
  /** RFC 6749 §5.2 error code and a short description, for anything but a 200. */
  readonly error?: { readonly code: ClientErrorCode; readonly description: string };
  /** For a 503: when the provider may try again, in seconds (`Retry-After`). */
  readonly retryAfterSeconds?: number;
  /** What failed, for the log line only. */
  readonly detail?: string;
}

const maxBodyBytes = 16 * 1024;

function refused(description: string): ProviderLogoutResult {
  return { status: 400, error: { code: 'invalid_request', description } };
}

/** A request without a logout token, whichever way it came. */
export const missingToken = refused('logout_token missing');
/** A token that is not a valid logout token of a provider of this path, whichever way it came. */
export const invalidToken = refused('logout token invalid');

/** A failure that stopped a provider logout (a store or provider outage), as its answer. */
function failedWith(error: AuthzError): ProviderLogoutResult {
  return {
    status: error.status,
    error: { code: clientErrorCode(error.code), description: error.publicMessage },
    ...(error.status === 503 ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
    detail: error.message,
  };
}

/** Runs `logout`; a catalogue failure becomes the answer, anything else (a bug) is rethrown. */
async function answering(
  logout: () => Promise<ProviderLogoutResult>,
): Promise<ProviderLogoutResult> {
  try {
    return await logout();
  } catch (error) {
    if (error instanceof AuthzError) return failedWith(error);
    throw error;
  }
}

/** A provider logout's answer as the provider reads it, through Envoy or straight. */
export interface ProviderLogoutReply {
  readonly status: number;
  readonly headers: readonly HeaderPair[];
  readonly body: string;
}

/**
 * The one place a provider logout answer is written: empty on success, else an OAuth error
 * response (RFC 6749 §5.2: `error`, `error_description`), with `Retry-After` on a 503.
 */
export function providerLogoutReply(result: ProviderLogoutResult): ProviderLogoutReply {
  if (result.error === undefined) {
    return { status: result.status, headers: [['cache-control', 'no-store']], body: '' };
  }
  const headers: HeaderPair[] = [
    ['content-type', 'application/json'],
    ['cache-control', 'no-store'],
  ];
  if (result.retryAfterSeconds !== undefined) {
    headers.push(['retry-after', String(result.retryAfterSeconds)]);
  }
  const body = JSON.stringify({
    error: result.error.code,
    error_description: result.error.description,
  });
  return { status: result.status, headers, body };
}

/** Reads `logout_token` from a form body; `undefined` when absent or the body is not a form. */
export function logoutTokenFrom(body: string): string | undefined {
  if (body.length > maxBodyBytes) return undefined;
  const token = new URLSearchParams(body).get('logout_token');
  return token === null || token === '' ? undefined : token;
}

/**
 * Ends the sessions a provider-initiated logout names: server sessions are deleted by their
 * `sid`/`sub` index, and a mark makes every cookie session of that `sid`/`sub` issued before
 * now refused. With a `sid`, only that provider session ends; with only `sub`, all of the user's.
 */
async function endSessions(
  app: AppRuntime,
  subject: { readonly sid?: string | undefined; readonly sub?: string | undefined },
): Promise<void> {
  if (subject.sid !== undefined) {
    await app.revocations.endAll({ by: 'sid', value: subject.sid });
    await app.sessions.endBySid(subject.sid);
  } else if (subject.sub !== undefined) {
    await app.revocations.endAll({ by: 'sub', value: subject.sub });
    await app.sessions.endBySub(subject.sub);
  }
}

/**
 * Verifies the logout token against the app's provider keys and claims, refuses a `jti` used
 * before (on any replica), then ends the sessions. A store or provider outage is answered with
 * its status (503, `Retry-After`): the provider retries, and nothing is acknowledged that did
 * not reach every replica. Two deliveries of one token at the same instant may both end the
 * sessions, which ends nothing more than one does.
 */
export function backchannelLogout(
  app: AppRuntime,
  token: string,
  now: () => number,
): Promise<ProviderLogoutResult> {
  return answering(async () => {
    let claims;
    try {
      claims = await app.oidc.verifyLogoutToken(token);
    } catch (error) {
      if (error instanceof AuthzError && error.code === 'TOKEN_INVALID') return invalidToken;
      throw error;
    }
    // The `jti` is marked used only once the sessions have ended: a logout an outage cut short
    // is answered 503, and the provider's retry of the same token must then succeed.
    const replayKey = sha256Base64url(`${app.oidc.issuer}\u0000${claims.jti}`);
    if ((await app.logoutTokenReplay.get(replayKey)) !== undefined) {
      return refused('logout token already used');
    }
    await endSessions(app, claims);
    await app.logoutTokenReplay.setIfAbsent(replayKey, { at: now() });
    return { status: 200 };
  });
}

/**
 * The apps a back-channel logout posted straight to the HTTP listener is for: those listening
 * on that path whose issuer and client id the (not yet verified) token names. Each verifies it
 * against its own provider keys.
 */
export function appsForLogoutToken(
  apps: readonly AppRuntime[],
  path: string,
  token: string,
): AppRuntime[] {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch {
    return [];
  }
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? []);
  return apps.filter(
    (app) =>
      app.config.oidc.backchannelLogoutPath === path &&
      app.oidc.issuer === claims.iss &&
      app.config.oidc.clientId !== undefined &&
      audiences.includes(app.config.oidc.clientId),
  );
}

/** A provider logout answered through Envoy: a local reply, even for a 200. */
function asVerdict(result: ProviderLogoutResult, extra: readonly HeaderPair[] = []): Verdict {
  const reply = providerLogoutReply(result);
  return localReply('provider_logout', reply.status, reply.body, [...reply.headers, ...extra]);
}

/** The back-channel logout step: a POST with a body (`with_request_body`) at `backchannelLogoutPath`. */
export function createBackchannelLogoutStep(deps: StepDeps): Step {
  return providerLogoutSteps(deps).handleBackchannelLogout;
}

/** The front-channel logout step: a GET from the provider's iframe at `frontchannelLogoutPath`. */
export function createFrontchannelLogoutStep(deps: StepDeps): Step {
  return providerLogoutSteps(deps).handleFrontchannelLogout;
}

function providerLogoutSteps({ now, logger }: StepDeps) {
  /**
   * Every provider logout leaves one line: accepted (info), or refused with why; the provider's
   * retries otherwise fail silently.
   */
  function logged(
    context: StepContext,
    result: ProviderLogoutResult,
    hint?: string,
  ): ProviderLogoutResult {
    if (result.error !== undefined) {
      logger.info(
        {
          requestId: context.request.id,
          app: context.app.name,
          reason: result.error.description,
          ...(result.detail === undefined ? {} : { detail: result.detail }),
          ...(hint === undefined ? {} : { hint }),
        },
        'provider logout refused',
      );
    } else {
      logger.info(
        { requestId: context.request.id, app: context.app.name, path: context.path },
        'provider logout accepted',
      );
    }
    return result;
  }

  function handleBackchannelLogout(context: StepContext): Promise<Verdict> | undefined {
    if (!context.app.endpoints.is('backchannel_logout', context.path)) return undefined;
    return backchannel(context);
  }

  async function backchannel(context: StepContext): Promise<Verdict> {
    const { request, app } = context;
    if (request.method !== 'POST') {
      const notPost = {
        status: 405,
        error: { code: 'invalid_request', description: 'POST a logout_token' },
      } as const;
      return asVerdict(logged(context, notPost), [['allow', 'POST']]);
    }
    const token = logoutTokenFrom(request.body);
    if (token === undefined) {
      return asVerdict(
        logged(context, missingToken, 'is the request body sent to the check (with_request_body)?'),
      );
    }
    return asVerdict(logged(context, await backchannelLogout(app, token, now)));
  }

  function handleFrontchannelLogout(context: StepContext): Promise<Verdict> | undefined {
    if (!context.app.endpoints.is('frontchannel_logout', context.path)) return undefined;
    return frontchannel(context);
  }

  async function frontchannel(context: StepContext): Promise<Verdict> {
    const { request, app } = context;
    const query = new URLSearchParams(request.query);
    const iss = query.get('iss');
    const sid = query.get('sid');
    if (iss !== app.oidc.issuer || sid === null || sid === '') {
      return asVerdict(logged(context, refused('iss and sid of this provider are required')));
    }
    const ended = await answering(async () => {
      await endSessions(app, { sid });
      return { status: 200 };
    });
    logged(context, ended);
    if (ended.error !== undefined) return asVerdict(ended);
    // Loaded in the provider's iframe: an empty page that must not be cached.
    return localReply('provider_logout', 200, '', [
      ['cache-control', 'no-store'],
      ['content-type', 'text/html; charset=utf-8'],
    ]);
  }

  return { handleBackchannelLogout, handleFrontchannelLogout };
}
