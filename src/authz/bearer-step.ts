/** The bearer step (SPEC §4.7, §8): a machine client's `Authorization: Bearer` (or DPoP-bound) token decides; failures never redirect. */
import { headersToScrub } from './app-runtime.ts';
import type { BearerOutcome } from './bearer-authenticator.ts';
import type { BearerIdentity } from './bearer-claims.ts';
import { b64TokenProblem, takeBearerCredential, type BearerCredential } from './bearer-header.ts';
import type { BearerRuntime } from './bearer-runtime.ts';
import { clientCertificateThumbprint } from './client-certificate.ts';
import { requestHtu, type ValidProof } from './dpop-proof.ts';
import type { DpopRuntime } from './dpop-runtime.ts';
import { AuthzError } from '../errors.ts';
import { secureFor } from './login.ts';
import type { Step, StepContext, StepDeps } from './pipeline.ts';
import type { Logger } from '../observability/logger.ts';
import { ourCookiesOut } from './session-step.ts';
import { AllowMemo, allowFor, type RenderedIdentity } from './allow-memo.ts';
import { completeIdentity } from './identity-render.ts';
import { ownString } from './rules.ts';
import type { Clock } from '../clock.ts';
import type { SessionLoad } from '../session/sessions.ts';
import {
  errorReply,
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

/** The errors of a `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1, §9). */
type DpopError = 'invalid_token' | 'invalid_dpop_proof' | 'use_dpop_nonce';

/**
 * A 401 with the DPoP challenge (RFC 9449 §7.1): `algs` lists what proofs may be signed with;
 * with nonces on, a fresh `DPoP-Nonce` to retry with (§9).
 */
function dpopRefusal(
  realm: string,
  dpop: DpopRuntime,
  error: DpopError,
  description: string,
): Verdict {
  const headers: HeaderPair[] = [
    [
      'www-authenticate',
      `DPoP realm=${quoted(realm)}, error="${error}", error_description=${quoted(description)}, algs=${quoted(dpop.algs)}`,
    ],
  ];
  if (dpop.nonces !== undefined) headers.push(['dpop-nonce', dpop.nonces.current()]);
  return jsonReply('invalid_token', 401, error, description, headers);
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
 * tokens off, when there is no `Authorization: Bearer` (or `DPoP`, with `bearer.dpop` on), or
 * when a valid session cookie is also present and `bearer.overridesCookie` is false (the cookie
 * wins). Otherwise it decides:
 * 429 while the client address is throttled; 401 `invalid_token` (counted by the throttle);
 * 401 with a `DPoP` challenge for a proof that fails (`invalid_dpop_proof`) or lacks a current
 * nonce (`use_dpop_nonce`); 503 with `Retry-After` when the provider's keys or introspection
 * cannot be had, or a proof's use cannot be recorded in the store; 403 `insufficient_scope` for
 * a missing scope; 403 when the app's authorization rules refuse the token's claims; else allow
 * with identity headers and the `authorization` header removed (unless
 * `passAuthorizationHeader`).
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
    const credential = takeBearerCredential(
      context.request.headers.get('authorization'),
      bearer.dpop !== undefined,
    );
    if (credential.kind === 'none') return undefined;
    const { request, app } = context;
    if (!bearer.overridesCookie && app.sessions.cookieNames(request.cookies).length > 0) {
      const whenNoSession = (loaded: SessionLoad) =>
        loaded.kind === 'valid' ? undefined : decide(context, bearer, credential);
      const loaded = app.sessions.load(request.cookies, secureFor(context), { bound: context });
      return loaded instanceof Promise ? loaded.then(whenNoSession) : whenNoSession(loaded);
    }
    return decide(context, bearer, credential);
  };

  /** A refusal the client caused: counted by the throttle, logged at debug level. */
  function refuse(context: StepContext, bearer: BearerRuntime, reason: string, verdict: Verdict) {
    bearer.throttle.recordFailure(context.request.clientAddress);
    if (log.isLevelEnabled('debug')) {
      log.debug(
        { app: context.app.name, requestId: context.request.id, reason },
        'bearer token refused',
      );
    }
    return verdict;
  }

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
    const { dpop } = bearer;
    const realm = context.app.name;
    if (credential.kind === 'malformed') {
      const verdict =
        credential.scheme === 'dpop' && dpop !== undefined
          ? dpopRefusal(realm, dpop, 'invalid_token', credential.reason)
          : invalidToken(realm);
      return refuse(context, bearer, credential.reason, verdict);
    }
    let proof: ValidProof | undefined;
    if (credential.scheme === 'dpop' && dpop !== undefined) {
      const checked = checkProof(context, dpop, credential.token);
      if (checked.kind !== 'valid') {
        if (checked.error === 'use_dpop_nonce') {
          return dpopRefusal(realm, dpop, checked.error, checked.reason);
        }
        return refuse(
          context,
          bearer,
          checked.reason,
          dpopRefusal(realm, dpop, checked.error, checked.reason),
        );
      }
      proof = checked;
    } else if (dpop?.required === true) {
      const reason = 'a DPoP-bound token and proof are required';
      return refuse(context, bearer, reason, dpopRefusal(realm, dpop, 'invalid_token', reason));
    }
    // The token's characters are checked only when it was not verified before.
    const { token } = credential;
    const outcome = bearer.authenticator.authenticate(token, b64TokenProblem, context);
    return outcome instanceof Promise
      ? outcome.then((settled) => conclude(context, bearer, settled, token, proof))
      : conclude(context, bearer, outcome, token, proof);
  }

  /** The `DPoP` header checked against the request (RFC 9449 §4.3), and the nonce (§9). */
  function checkProof(
    context: StepContext,
    dpop: DpopRuntime,
    token: string,
  ): ValidProof | { readonly kind: 'invalid'; readonly error: DpopError; readonly reason: string } {
    const { request } = context;
    const header = request.headers.get('dpop');
    if (header === undefined) {
      return { kind: 'invalid', error: 'invalid_dpop_proof', reason: 'DPoP proof missing' };
    }
    // Envoy joins repeated headers with `,`, which no JWS holds: two proofs were sent (§4.3).
    if (header.includes(',')) {
      return { kind: 'invalid', error: 'invalid_dpop_proof', reason: 'more than one DPoP proof' };
    }
    const htu = requestHtu(request);
    const checked =
      htu === undefined
        ? { kind: 'invalid' as const, reason: 'request URI cannot be compared' }
        : dpop.proofs.verify(header.trim(), request.method, htu, token, deps.now());
    if (checked.kind === 'invalid') {
      return { kind: 'invalid', error: 'invalid_dpop_proof', reason: checked.reason };
    }
    const nonces = dpop.nonces;
    if (nonces !== undefined && (checked.nonce === undefined || !nonces.accepts(checked.nonce))) {
      return {
        kind: 'invalid',
        error: 'use_dpop_nonce',
        reason: 'the resource server requires a nonce in the DPoP proof',
      };
    }
    return checked;
  }

  function conclude(
    context: StepContext,
    bearer: BearerRuntime,
    outcome: BearerOutcome,
    token: string,
    proof: ValidProof | undefined,
  ): Verdict | Promise<Verdict> {
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
        if (proof !== undefined && bearer.dpop !== undefined) {
          return dpopRefusal(
            app.name,
            bearer.dpop,
            'invalid_token',
            'the access token is not valid',
          );
        }
        return invalidToken(app.name);
      case 'valid': {
        const refusal = checkBinding(context, bearer, outcome.identity, proof);
        const allowed = () =>
          authorize(
            context,
            outcome.identity,
            token,
            recent,
            deps.logger,
            deps.now,
            nextNonce(bearer, proof),
          );
        if (refusal === undefined) return allowed();
        if (refusal instanceof Promise) return refusal.then((verdict) => verdict ?? allowed());
        return refusal;
      }
    }
  }

  /**
   * The token's binding against what the request shows (RFC 9449 §7.1, RFC 8705 §3): a
   * DPoP-bound token only with a proof by its key, used once on every replica; a
   * certificate-bound one only over a connection with its certificate; an unbound one never
   * under the DPoP scheme. `undefined` when it holds.
   */
  function checkBinding(
    context: StepContext,
    bearer: BearerRuntime,
    identity: BearerIdentity,
    proof: ValidProof | undefined,
  ): Verdict | Promise<Verdict | undefined> | undefined {
    const realm = context.app.name;
    const confirmation = identity.confirmation;
    const dpop = bearer.dpop;
    if (proof !== undefined && dpop !== undefined) {
      if (confirmation?.kind !== 'dpop') {
        const reason = 'the DPoP scheme needs a DPoP-bound token';
        return refuse(context, bearer, reason, dpopRefusal(realm, dpop, 'invalid_token', reason));
      }
      if (confirmation.jkt !== proof.jkt) {
        const reason = 'the proof is not signed by the key the token is bound to';
        return refuse(
          context,
          bearer,
          reason,
          dpopRefusal(realm, dpop, 'invalid_dpop_proof', reason),
        );
      }
      return markUsed(context, bearer, dpop, proof);
    }
    if (confirmation === undefined) return undefined;
    if (confirmation.kind === 'dpop') {
      const reason = 'a DPoP-bound token must come with the DPoP scheme and a proof';
      const verdict =
        dpop === undefined
          ? invalidToken(realm, reason)
          : dpopRefusal(realm, dpop, 'invalid_token', reason);
      return refuse(context, bearer, reason, verdict);
    }
    const seen =
      bearer.xfccHops === undefined
        ? undefined
        : clientCertificateThumbprint(context.request, bearer.xfccHops);
    if (seen === confirmation.x5t) return undefined;
    const reason =
      seen === undefined
        ? 'the token is bound to a client certificate and none was presented'
        : 'the client certificate is not the one the token is bound to';
    return refuse(context, bearer, reason, invalidToken(realm, reason));
  }

  /** Records the proof's use; a replay or a store that cannot record it refuses the request. */
  function markUsed(
    context: StepContext,
    bearer: BearerRuntime,
    dpop: DpopRuntime,
    proof: ValidProof,
  ): Promise<Verdict | undefined> {
    return dpop.markUsed(proof.jkt, proof.jti).then(
      (fresh) => {
        if (fresh) return undefined;
        const reason = 'DPoP proof replayed';
        return refuse(
          context,
          bearer,
          reason,
          dpopRefusal(context.app.name, dpop, 'invalid_dpop_proof', reason),
        );
      },
      (error: unknown) => {
        if (!(error instanceof AuthzError)) throw error;
        log.warn(
          { app: context.app.name, requestId: context.request.id, code: error.code },
          'DPoP proof could not be recorded; refused',
        );
        return errorReply(error);
      },
    );
  }
}

/**
 * RFC 9449 §9: the nonce of the current window, handed out with an allow whose proof used the
 * previous one, so the client moves on before its nonce stops being accepted.
 */
function nextNonce(
  bearer: BearerRuntime,
  proof: ValidProof | undefined,
): readonly HeaderPair[] | undefined {
  const nonces = bearer.dpop?.nonces;
  if (nonces === undefined || proof === undefined) return undefined;
  const current = nonces.current();
  return proof.nonce === current ? undefined : [['dpop-nonce', current]];
}

/** The client a token was issued to (RFC 9068 §2.2, OIDC Core §2): `azp`, else `client_id`. */
function clientIdOf(claims: BearerIdentity['claims']): string {
  return ownString(claims, 'azp') ?? ownString(claims, 'client_id') ?? '';
}

function authorize(
  context: StepContext,
  identity: BearerIdentity,
  token: string,
  recent: AllowMemo<BearerIdentity>,
  logger: Logger,
  now: Clock,
  responseHeaders: readonly HeaderPair[] = [],
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
  const at = now();
  const render = (): RenderedIdentity => {
    const input = {
      claims: identity.claims,
      auth: { method: 'bearer', clientId: clientIdOf(identity.claims) },
    };
    // Fields by name: a spread followed by more properties takes a slow path (see session-step).
    const rendered = app.headers.render({
      claims: input.claims,
      auth: input.auth,
      accessToken: token,
      idToken: undefined,
    });
    const upstreamHeaders: HeaderPair[] = bearer.userHeaderIsIdentifier
      ? rendered.filter(([name]) => name !== 'x-auth-request-user')
      : rendered;
    if (bearer.userHeaderIsIdentifier) {
      upstreamHeaders.push(['x-auth-request-user', identity.identifier]);
    }
    return completeIdentity(app, upstreamHeaders, input, identity, at, {
      notAfter: identity.expiresAt,
      subject: identity.identifier,
    });
  };
  const entry = recent.entryFor(identity, app, at, render, (headers) =>
    headers.every(([, value]) => !value.includes(token)),
  );
  const alsoRemove =
    !bearer.passAuthorizationHeader && !entry.names.has('authorization')
      ? 'authorization'
      : undefined;
  // The upstream never sees our session or login-state cookies, even when the token won.
  const cookie = ourCookiesOut(app, request);
  return allowFor(
    entry,
    'bearer',
    headersToScrub(app, request, entry.names),
    alsoRemove,
    cookie,
    responseHeaders,
  );
}
