/** The bearer step (SPEC §4.7, §8): a machine client's `Authorization: Bearer` token decides; failures never redirect. */
import { headersToScrub } from './app-runtime.ts';
import type { BearerOutcome } from './bearer-authenticator.ts';
import type { BearerIdentity } from './bearer-claims.ts';
import { b64TokenProblem, takeBearerCredential, type BearerCredential } from './bearer-header.ts';
import type { BearerRuntime } from './bearer-runtime.ts';
import { secureFor } from './login.ts';
import type { Step, StepContext, StepDeps } from './pipeline.ts';
import type { Logger } from '../observability/logger.ts';
import { ourCookiesOut } from './session-step.ts';
import { AllowMemo, allowFor } from './allow-memo.ts';
import {
  localReply,
  jsonReply,
  providerUnavailable,
  type HeaderPair,
  type Verdict,
} from './verdict.ts';

/** RFC 6750 §3: a quoted-string value; our values never hold `"` or `\`, but make sure. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

function invalidToken(realm: string, description = 'the access token is not valid'): Verdict {
  return jsonReply('invalid_token', 401, 'invalid_token', description, [
    [
      'www-authenticate',
      `Bearer realm=${quoted(realm)}, error="invalid_token", error_description=${quoted(description)}`,
    ],
  ]);
}

function insufficientScope(realm: string, scope: string): Verdict {
  return jsonReply(
    'insufficient_scope',
    403,
    'insufficient_scope',
    'the access token lacks a required scope',
    [
      [
        'www-authenticate',
        `Bearer realm=${quoted(realm)}, error="insufficient_scope", scope=${quoted(scope)}`,
      ],
    ],
  );
}

/**
 * Builds the step. It passes the request on (returns `undefined`) when the app has bearer
 * tokens off, when there is no `Authorization: Bearer`, or when a valid session cookie is also
 * present and `bearer.overridesCookie` is false (the cookie wins). Otherwise it decides:
 * 429 while the client address is throttled; 401 `invalid_token` (counted by the throttle);
 * 503 with `Retry-After` when the provider's keys or introspection cannot be had; 403
 * `insufficient_scope` for a missing scope; 403 when the app's authorization rules refuse the
 * token's claims; else allow with identity headers and the `authorization` header removed
 * (unless `passAuthorizationHeader`).
 */
export function createBearerStep(deps: StepDeps): Step {
  // Refusals are logged at debug level, with the failed check but never the token.
  const log = deps.logger.child({ component: 'bearer' });
  const recent = new AllowMemo<BearerIdentity>();
  return function authenticateBearer(
    context: StepContext,
  ): Verdict | Promise<Verdict | undefined> | undefined {
    const bearer = context.app.bearer;
    if (bearer === undefined) return undefined;
    const credential = takeBearerCredential(context.request.headers.get('authorization'));
    if (credential.kind === 'none') return undefined;
    const { request, app } = context;
    if (!bearer.overridesCookie && app.sessions.cookieNames(request.cookies).length > 0) {
      return app.sessions
        .load(request.cookies, secureFor(context), { bound: context })
        .then((loaded) =>
          loaded.kind === 'valid' ? undefined : decide(context, bearer, credential),
        );
    }
    return decide(context, bearer, credential);
  };

  /** The verdict on the token; without a promise when the token was verified before. */
  function decide(
    context: StepContext,
    bearer: BearerRuntime,
    credential: Exclude<BearerCredential, { kind: 'none' }>,
  ): Verdict | Promise<Verdict> {
    const retryAfter = bearer.throttle.retryAfterSeconds(context.request.clientAddress);
    if (retryAfter !== undefined) {
      bearer.metrics.throttled();
      return jsonReply('throttled', 429, 'too_many_requests', 'too many failed attempts', [
        ['retry-after', String(retryAfter)],
      ]);
    }
    if (credential.kind === 'malformed') {
      return conclude(context, bearer, { kind: 'invalid', reason: credential.reason });
    }
    // The token's characters are checked only when it was not verified before.
    const outcome = bearer.authenticator.authenticate(credential.token, b64TokenProblem, context);
    return outcome instanceof Promise
      ? outcome.then((settled) => conclude(context, bearer, settled))
      : conclude(context, bearer, outcome);
  }

  function conclude(context: StepContext, bearer: BearerRuntime, outcome: BearerOutcome): Verdict {
    const { app } = context;
    switch (outcome.kind) {
      case 'unavailable':
        log.warn(
          { app: app.name, requestId: context.request.id, detail: outcome.detail },
          'bearer token could not be checked',
        );
        return providerUnavailable(outcome.retryAfterSeconds);
      case 'invalid':
        bearer.throttle.recordFailure(context.request.clientAddress);
        if (outcome.binding !== undefined) {
          // Not debug: an operator must learn that a client sends bound tokens (DPoP, mTLS).
          log.warn(
            { app: app.name, requestId: context.request.id, binding: outcome.binding },
            'sender-constrained bearer token refused: its binding is not verified',
          );
          return invalidToken(app.name, outcome.reason);
        }
        if (log.isLevelEnabled('debug')) {
          log.debug(
            { app: app.name, requestId: context.request.id, reason: outcome.reason },
            'bearer token refused',
          );
        }
        return invalidToken(app.name);
      case 'valid':
        return authorize(context, outcome.identity, recent, deps.logger);
    }
  }
}

function authorize(
  context: StepContext,
  identity: BearerIdentity,
  recent: AllowMemo<BearerIdentity>,
  logger: Logger,
): Verdict {
  const { request, app, path } = context;
  const bearer = app.bearer!;
  const missing = bearer.scopes.missing(identity.scopes, request.method, path);
  if (missing !== undefined) return insufficientScope(app.name, missing);
  const refusal = app.rules.check(identity.claims, request.method, path);
  if (refusal !== undefined) {
    logger.info(
      { requestId: request.id, app: app.name, rule: refusal, via: 'bearer' },
      'denied by a rule',
    );
    return localReply('forbidden', 403, `${refusal}\n`, [
      ['content-type', 'text/plain; charset=utf-8'],
    ]);
  }

  // The identity is the cached verification of this very token, so its headers are too;
  // unless they carry the token itself, which is kept nowhere but in the request.
  const token = (request.headers.get('authorization') ?? '').slice(7).trim();
  const render = (): HeaderPair[] => {
    const rendered = app.headers.render({
      claims: identity.claims,
      accessToken: token,
      idToken: undefined,
    });
    const upstreamHeaders: HeaderPair[] = bearer.userHeaderIsIdentifier
      ? rendered.filter(([name]) => name !== 'x-auth-request-user')
      : rendered;
    if (bearer.userHeaderIsIdentifier) {
      upstreamHeaders.push(['x-auth-request-user', identity.identifier]);
    }
    return upstreamHeaders;
  };
  const entry = recent.entryFor(identity, app, render, (headers) =>
    headers.every(([, value]) => !value.includes(token)),
  );
  const alsoRemove =
    !bearer.passAuthorizationHeader && !entry.names.has('authorization')
      ? 'authorization'
      : undefined;
  // The upstream never sees our session or login-state cookies, even when the token won.
  const cookie = ourCookiesOut(app, request);
  return allowFor(entry, 'bearer', headersToScrub(app, request, entry.names), alsoRemove, cookie);
}
