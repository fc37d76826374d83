/** The session path (SPEC §4.8): a valid session, refreshed when due, authorized, let through. */
import { hasExpired } from '../expiry.ts';
import { SessionTooLargeError } from '../errors.ts';
import { headersToScrub, type AppRuntime } from './app-runtime.ts';
import { sessionTooLarge } from './session-too-large.ts';
import { secureFor, stepUpRequired, unauthenticated } from './login.ts';
import { shortfallOf } from './step-up.ts';
import { remainingMs, type Step, type StepContext, type StepDeps } from './pipeline.ts';
import type { RequestModel } from './request.ts';
import type { Session } from '../session/session.ts';
import type { SessionLoad } from '../session/sessions.ts';
import { RefreshCoordinator } from '../oidc/refresh-coordinator.ts';
import { AllowMemo, allowFor, oneOff, type CookieChange } from './allow-memo.ts';
import { completeIdentity } from './identity-render.ts';
import { providerUnavailable, refusalReply, type HeaderPair, type Verdict } from './verdict.ts';

const noHeaders: readonly HeaderPair[] = Object.freeze([]);

/** A session load that found a valid session. */
type ValidLoad = Extract<SessionLoad, { readonly kind: 'valid' }>;

/**
 * The `cookie` header without the named cookies, pairs trimmed and joined with `; `;
 * `undefined` when nothing is left. One pass over the header, no intermediate arrays.
 */
export function cookieHeaderWithout(
  header: string,
  names: ReadonlySet<string>,
): string | undefined {
  let kept: string | undefined;
  let start = 0;
  while (start <= header.length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = header.length;
    const pair = header.slice(start, end).trim();
    if (pair !== '') {
      const eq = pair.indexOf('=');
      const name = eq > 0 ? pair.slice(0, eq).trim() : '';
      if (!names.has(name)) kept = kept === undefined ? pair : `${kept}; ${pair}`;
    }
    start = end + 1;
  }
  return kept;
}

/**
 * What an allow does to the `cookie` header once our own cookies are out of it (see
 * {@link CookieChange}): `''` removes it, anything else replaces it.
 */
function cookieChange(header: string, ours: ReadonlySet<string>): CookieChange {
  return cookieHeaderWithout(header, ours) ?? '';
}

/**
 * The {@link CookieChange} of an allow that keeps our session and login-state cookies from the
 * upstream: `undefined` when the request carries none of them.
 */
export function ourCookiesOut(
  app: Pick<AppRuntime, 'sessions'>,
  request: Pick<RequestModel, 'headers' | 'cookies'>,
): CookieChange {
  const header = request.headers.get('cookie');
  if (header === undefined) return undefined;
  const ours = app.sessions.cookieNames(request.cookies);
  return ours.length === 0 ? undefined : cookieChange(header, new Set(ours));
}

/** `deps.logger` gets each refused session cookie (one line, with the reason) and an outgrown session. */
export function createSessionStep(deps: StepDeps): Step {
  const recent = new AllowMemo<object>();
  /**
   * Synchronous while the session loads without I/O and needs no refresh (a hot session: no
   * promise, no budget timer); a promise from the first thing it waits on.
   */
  return function allowSession(
    context: StepContext,
  ): Verdict | undefined | Promise<Verdict | undefined> {
    const { request, app } = context;
    const { cookies } = request;
    // Without any of the app's cookies there is no session to load: decided without a promise.
    if (cookies.size === 0 || app.sessions.cookieNames(cookies).length === 0) return undefined;
    const loaded = app.sessions.load(cookies, secureFor(context), {
      // The decoded-session cache keeps the ID token only for an app that sends it upstream.
      cacheIdToken: app.headers.readsIdToken,
      bound: context,
    });
    if (!(loaded instanceof Promise)) return decide(context, loaded);
    // Named only when it waits: a later step's slow line must not blame a load that did not.
    context.waitingOn = 'session load';
    return loaded.then((settled) => decide(context, settled));
  };

  function decide(
    context: StepContext,
    loaded: SessionLoad,
  ): Verdict | undefined | Promise<Verdict | undefined> {
    const { request, app } = context;
    if (loaded.kind === 'none') return undefined;
    if (loaded.kind !== 'valid') {
      // A cookie of another app or deployment reads as `undecodable`, exactly like a tampered
      // one: the same answer and the same line, so neither tells an attacker which it was.
      deps.logger.info(
        { requestId: request.id, app: app.name, reason: loaded.reason },
        'session cookie refused',
      );
      return unauthenticated(context, loaded.setCookie);
    }
    const now = deps.now();
    return RefreshCoordinator.isDue(loaded.session, now, app.config.refresh.skew)
      ? refreshThenAuthorize(context, loaded, now)
      : authorize(context, loaded, loaded.session, loaded.setCookie, now);
  }

  /** A session whose refresh is due: refreshed (or not) as its state allows, then authorized. */
  async function refreshThenAuthorize(
    context: StepContext,
    loaded: ValidLoad,
    now: number,
  ): Promise<Verdict | undefined> {
    const { request, app } = context;
    const secure = secureFor(context);
    let { session } = loaded;
    let setCookie = loaded.setCookie;
    // While the access token works, the refresh runs in the background and this request is
    // served at once; a later request picks up the published result (and writes it). Only a
    // request whose access token has expired waits for the refresh, within what is left of
    // its budget (then 503 with Retry-After; the refresh goes on).
    context.waitingOn = 'refresh';
    const outcome = hasExpired(session.tokens.expiresAt, now)
      ? await app.refresher.refresh(session, remainingMs(context), context)
      : ((await app.refresher.refreshAhead(session, context)) ?? { kind: 'pending' as const });
    switch (outcome.kind) {
      case 'pending':
      case 'deferred':
        // Served on the current tokens: refreshing now is not safe (the store is down).
        break;
      case 'refreshed': {
        let written;
        context.waitingOn = 'session write';
        const claims =
          outcome.claims === undefined ? undefined : { ...session.claims, ...outcome.claims };
        try {
          written = await writtenInTime(
            app.sessions.update(
              loaded,
              claims === undefined
                ? { tokens: outcome.tokens }
                : { tokens: outcome.tokens, claims },
              request.cookies,
              secure,
            ),
            remainingMs(context),
            () =>
              deps.logger.warn(
                { requestId: request.id, app: app.name },
                'refreshed session not written: the next request writes it again from the published refresh result',
              ),
          );
        } catch (failure) {
          if (!(failure instanceof SessionTooLargeError)) throw failure;
          // The refreshed session outgrew its cookies: end it cleanly, say why.
          const ended = await app.sessions.end(request.cookies, secure);
          return sessionTooLarge(context, failure, deps.logger, ended);
        }
        if (written === undefined) {
          // The store did not confirm the record within the budget (a server session under
          // replicaAcks while a replica syncs): served on the new tokens now; the write goes
          // on, and a request still finding the old record reads the published result.
          session = {
            ...session,
            tokens: outcome.tokens,
            ...(claims === undefined ? {} : { claims }),
          };
          break;
        }
        session = written.session;
        setCookie = written.setCookie;
        break;
      }
      case 'ended':
        // Nothing to refresh with, but the token still works: serve until it expires.
        if (
          session.tokens.refreshToken === undefined &&
          !hasExpired(session.tokens.expiresAt, now)
        ) {
          break;
        }
        // The provider refused the refresh token (any 4xx, JSON body or not) or its new ID
        // token failed verification: this session is over, not the provider.
        deps.logger.info(
          { requestId: request.id, app: app.name },
          'session ended: its refresh token was refused',
        );
        context.waitingOn = 'session end';
        return unauthenticated(context, await app.sessions.end(request.cookies, secure));
      case 'unavailable':
        // The old access token still works: keep serving; else the caller retries later.
        if (hasExpired(session.tokens.expiresAt, now)) {
          deps.logger.warn(
            { requestId: request.id, app: app.name, cause: outcome.cause },
            'session not refreshed: answered 503, the session is kept',
          );
          return providerUnavailable(outcome.retryAfterSeconds);
        }
    }
    return authorize(context, loaded, session, setCookie, now);
  }

  /** The session's rules (step-up, roles and claims), then its allow. */
  function authorize(
    context: StepContext,
    loaded: ValidLoad,
    session: Session,
    setCookie: readonly string[],
    now: number,
  ): Verdict | Promise<Verdict> {
    const { request, app } = context;
    const readsIdToken = app.headers.readsIdToken;
    const demand = app.stepUp.demandFor(request.method, context.path);
    if (demand !== undefined) {
      const shortfall = shortfallOf(session.claims, demand, now, app.config.oidc.clockSkew);
      if (shortfall === 'no acr meets every rule') {
        deps.logger.info(
          { requestId: request.id, app: app.name, rule: shortfall, via: 'session' },
          'denied by a rule',
        );
        return refusalReply(
          'forbidden',
          403,
          'forbidden',
          'no acr value meets every rule of this path',
        );
      }
      if (shortfall !== undefined) {
        deps.logger.info(
          { requestId: request.id, app: app.name, shortfall },
          'session does not meet the authentication the path demands: step-up',
        );
        return stepUpRequired(context, demand, setCookie);
      }
    }

    const refusal = app.rules.check(session.claims, request.method, context.path);
    if (refusal !== undefined) {
      deps.logger.info(
        { requestId: request.id, app: app.name, rule: refusal, via: 'session' },
        'denied by a rule',
      );
      return refusalReply('forbidden', 403, 'forbidden', refusal);
    }

    // A cached session stands for itself across requests (the session caches hand out the same
    // identity while the cookie or record is unchanged); a session refreshed here is new.
    const memo = session === loaded.session ? recent : undefined;
    const render = () => {
      const input = {
        claims: session.claims,
        auth: { method: 'session', clientId: app.config.oidc.clientId ?? '' },
      };
      // Fields by name: in Node 20 a spread followed by more properties takes a slow path
      // (about 1 µs per render).
      const headers = app.headers.render({
        claims: input.claims,
        auth: input.auth,
        accessToken: session.tokens.accessToken,
        // Read only when sent upstream: a cached session reads it back from the cookie.
        idToken: readsIdToken ? session.tokens.idToken : undefined,
      });
      // A refreshed session may carry new claims: its assertion is its own.
      return completeIdentity(
        app,
        headers,
        input,
        memo === undefined ? session : loaded.identity,
        now,
      );
    };
    const entry = memo?.entryFor(loaded.identity, app, now, render) ?? oneOff(app, render);
    const cookieHeader = request.headers.get('cookie');
    return allowFor(
      entry,
      'session',
      headersToScrub(app, request, entry.names),
      undefined,
      // `cookieNames` already lists the login-state cookies beside the session's own.
      cookieHeader === undefined
        ? undefined
        : cookieChange(cookieHeader, new Set(loaded.cookieNames)),
      setCookie.length === 0 ? noHeaders : setCookie.map((line) => ['set-cookie', line] as const),
    );
  }
}

/**
 * `write`, or `undefined` once `waitMs` passed first; a write that then fails leaves one line
 * (`late`). A cookie session's write settles at once; only a store write can be late.
 */
export function writtenInTime<T>(
  write: Promise<T>,
  waitMs: number,
  late: () => void,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve(undefined);
    }, waitMs);
  });
  write.catch(() => {
    if (timedOut) late();
  });
  return Promise.race([write, expired]).finally(() => clearTimeout(timer));
}
