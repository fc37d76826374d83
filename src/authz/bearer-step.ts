/** The bearer step (SPEC §4.7, §8): a machine client's `Authorization: Bearer` token decides; failures never redirect. */
import { headersToScrub } from './app-runtime.ts';
import type { Logger } from '../observability/logger.ts';
import type { BearerIdentity } from './bearer-claims.ts';
import { readBearerCredential } from './bearer-header.ts';
import { secureFor } from './login.ts';
import type { StepContext } from './pipeline.ts';
import { cookieHeaderWithout } from './session-step.ts';
import { allow, deny, jsonDeny, type HeaderPair, type Verdict } from './verdict.ts';

export interface BearerStepDeps {
  /** Where refusals are logged at debug level, with the failed check but never the token. */
  readonly logger?: Logger;
}

/** RFC 6750 §3: a quoted-string value; our values never hold `"` or `\`, but make sure. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

function invalidToken(realm: string): Verdict {
  return jsonDeny('invalid_token', 401, 'invalid_token', 'the access token is not valid', [
    [
      'www-authenticate',
      `Bearer realm=${quoted(realm)}, error="invalid_token", error_description="the access token is not valid"`,
    ],
  ]);
}

function insufficientScope(realm: string, scope: string): Verdict {
  return jsonDeny(
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
export function createBearerStep(deps: BearerStepDeps = {}) {
  const log = deps.logger?.child({ component: 'bearer' });
  return async function authenticateBearer(context: StepContext): Promise<Verdict | undefined> {
    const { request, app } = context;
    const bearer = app.bearer;
    if (bearer === undefined) return undefined;
    const credential = readBearerCredential(request.headers.get('authorization'));
    if (credential.kind === 'none') return undefined;
    if (!bearer.overridesCookie && app.sessions.cookieNames(request.cookies).length > 0) {
      const loaded = await app.sessions.load(request.cookies, secureFor(context));
      if (loaded.kind === 'valid') return undefined;
    }

    const address = request.clientAddress;
    const retryAfter = bearer.throttle.retryAfterSeconds(address);
    if (retryAfter !== undefined) {
      bearer.metrics.throttled();
      return jsonDeny('throttled', 429, 'too_many_requests', 'too many failed attempts', [
        ['retry-after', String(retryAfter)],
      ]);
    }
    const outcome =
      credential.kind === 'malformed'
        ? { kind: 'invalid' as const, reason: credential.reason }
        : await bearer.authenticator.authenticate(credential.token);
    switch (outcome.kind) {
      case 'unavailable':
        log?.warn({ app: app.name, detail: outcome.detail }, 'bearer token could not be checked');
        return jsonDeny(
          'unavailable',
          503,
          'temporarily_unavailable',
          'identity provider unavailable, retry shortly',
          [['retry-after', String(outcome.retryAfterSeconds)]],
        );
      case 'invalid':
        bearer.throttle.recordFailure(address);
        if (log?.isLevelEnabled('debug') === true) {
          log.debug({ app: app.name, reason: outcome.reason }, 'bearer token refused');
        }
        return invalidToken(app.name);
      case 'valid':
        return authorize(context, outcome.identity);
    }
  };
}

function authorize(context: StepContext, identity: BearerIdentity): Verdict {
  const { request, app } = context;
  const bearer = app.bearer!;
  const missing = bearer.scopes.missing(identity.scopes, request.method, request.path);
  if (missing !== undefined) return insufficientScope(app.name, missing);
  const refusal = app.rules.check(identity.claims, request);
  if (refusal !== undefined) {
    return deny('forbidden', 403, `${refusal}\n`, [['content-type', 'text/plain; charset=utf-8']]);
  }

  const authorization = request.headers.get('authorization') ?? '';
  const rendered = app.headers.render({
    claims: identity.claims,
    accessToken: authorization.slice(7).trim(),
    idToken: undefined,
  });
  const upstreamHeaders: HeaderPair[] = bearer.userHeaderIsIdentifier
    ? rendered.filter(([name]) => name !== 'x-auth-request-user')
    : rendered;
  if (bearer.userHeaderIsIdentifier) {
    upstreamHeaders.push(['x-auth-request-user', identity.identifier]);
  }
  const setNames = new Set(upstreamHeaders.map(([name]) => name));
  const removeHeaders = [...headersToScrub(app, request.headers, setNames)];
  if (!bearer.passAuthorizationHeader && !setNames.has('authorization')) {
    removeHeaders.push('authorization');
  }
  // The upstream never sees our session or login-state cookies, even when the token won.
  const cookieHeader = request.headers.get('cookie');
  if (cookieHeader !== undefined) {
    const ours = app.sessions.cookieNames(request.cookies);
    if (ours.length > 0) {
      const rest = cookieHeaderWithout(cookieHeader, new Set(ours));
      if (rest === undefined) removeHeaders.push('cookie');
      else upstreamHeaders.push(['cookie', rest]);
    }
  }
  return allow('bearer', { upstreamHeaders, removeHeaders });
}
