/** What the pipeline decided for one request. One exhaustive switch turns it into a response. */
import {
  clientErrorCode,
  errorCatalogue,
  type AuthzError,
  type ClientErrorCode,
  type ErrorCode,
} from '../errors.ts';

/** A header as it will be sent: lower-case name, value free of CR/LF/NUL. */
export type HeaderPair = readonly [name: string, value: string];

/**
 * One `dynamic_metadata` entry (`google.protobuf.Struct` field with a string value), filed by
 * Envoy under the ext_authz filter's namespace.
 */
export type MetadataEntry = readonly [key: string, value: string];

/** Why a request was allowed; a bounded set, used as a metric label. */
export type AllowReason = 'public_path' | 'preflight' | 'session' | 'bearer' | 'unmatched';

/** Why a request was denied; a bounded set, used as a metric label. */
export type ReplyReason =
  | 'bad_request'
  | 'no_app'
  | 'unauthenticated'
  | 'login'
  | 'callback'
  | 'callback_error'
  | 'logout'
  | 'forbidden'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'throttled'
  | 'unavailable'
  | 'provider_logout'
  | 'session_too_large';

/** gRPC status codes a deny may carry (never OK). */
export type ReplyCode = 3 | 7 | 14 | 16;

/** Header names to remove, listed once and also joined for `x-envoy-auth-headers-to-remove`. */
export interface RemovalList {
  readonly names: readonly string[];
  /** `names` joined with `, `. */
  readonly joined: string;
}

export interface Allow {
  readonly kind: 'allow';
  readonly reason: AllowReason;
  /** Set on the upstream request, overwriting what was there. */
  readonly upstreamHeaders: readonly HeaderPair[];
  /** Removed from the upstream request (after the sets): request headers we saw. */
  readonly removeHeaders: readonly string[];
  /**
   * Every spelling of every identity header of the app that this allow does not set, whether
   * the request carries it or not. Envoy's `http_service` shows us only the headers it is told
   * to, so HTTP mode lists all of these for removal (ENVOY.md §4); gRPC mode sees every
   * request header and needs only `removeHeaders`. Built once per app and identity.
   */
  readonly identityRemovals: RemovalList;
  /** Added to the response going back to the client, one line each (e.g. `set-cookie`). */
  readonly responseHeaders: readonly HeaderPair[];
  /**
   * `dynamic_metadata` entries besides `reason` and `app` (`dynamicMetadata`); gRPC mode only,
   * Envoy's `http_service` has no way to carry them.
   */
  readonly metadata: readonly MetadataEntry[];
}

export interface LocalReply {
  readonly kind: 'local_reply';
  readonly reason: ReplyReason;
  /** HTTP status of the local reply (302 for a redirect). */
  readonly status: number;
  readonly code: ReplyCode;
  /** Headers of the local reply; several `set-cookie` entries stay several lines. */
  readonly headers: readonly HeaderPair[];
  readonly body: string;
  /**
   * Set on a refusal a person may see: what the page for a browser says. The pipeline renders
   * it (with the request id) for a browser navigation, or for every caller when `always`.
   */
  readonly page?: PageContent;
}

/** What a refusal's page says; every value is escaped when the page is rendered. */
export interface PageContent {
  /** Says what happened: the page's `<title>` and heading. */
  readonly title: string;
  readonly message: string;
  /** A refusal by a rule: the page offers to sign out and switch account. */
  readonly switchAccount?: true;
  /** Where "start again" goes (an absolute URL on the request's origin, or a path). */
  readonly retryUrl?: string;
  /** A login-flow page, HTML for every caller (only a browser follows the flow). */
  readonly always?: true;
}

export type Verdict = Allow | LocalReply;

/**
 * What a verdict does for the user, as the `verdict` metric label says it (a bounded set):
 * `allow` (forwarded upstream), `login` (sent to the provider, or 401 to an API caller without a
 * session), `callback` (a login completed: back to the page it started from), `logout`,
 * `unavailable` (503: an outage or the budget ran out) and `deny` (every other refusal,
 * including a callback that did not complete a login).
 */
export type VerdictOutcome = 'allow' | 'deny' | 'login' | 'callback' | 'logout' | 'unavailable';

/** Every {@link VerdictOutcome}, for documentation and tests. */
export const verdictOutcomes: readonly VerdictOutcome[] = Object.freeze([
  'allow',
  'deny',
  'login',
  'callback',
  'logout',
  'unavailable',
]);

export function outcomeOf(verdict: Verdict): VerdictOutcome {
  if (verdict.kind === 'allow') return 'allow';
  if (verdict.status === 503) return 'unavailable';
  switch (verdict.reason) {
    case 'login':
    case 'unauthenticated':
      return 'login';
    case 'logout':
    case 'provider_logout':
      return 'logout';
    case 'callback':
      return verdict.status < 400 ? 'callback' : 'deny';
    default:
      return 'deny';
  }
}

const noHeaders: readonly HeaderPair[] = Object.freeze([]);
const noNames: readonly string[] = Object.freeze([]);

/** Nothing to remove. */
export const noRemovals: RemovalList = Object.freeze({ names: noNames, joined: '' });

export function allow(
  reason: AllowReason,
  parts: Partial<Omit<Allow, 'kind' | 'reason'>> = {},
): Allow {
  return {
    kind: 'allow',
    reason,
    upstreamHeaders: parts.upstreamHeaders ?? noHeaders,
    removeHeaders: parts.removeHeaders ?? noNames,
    identityRemovals: parts.identityRemovals ?? noRemovals,
    responseHeaders: parts.responseHeaders ?? noHeaders,
    metadata: parts.metadata ?? noHeaders,
  };
}

/** The gRPC code that matches an HTTP status, as Envoy maps it for gRPC downstreams. */
function codeForStatus(status: number): ReplyCode {
  if (status === 401 || (status >= 300 && status < 400)) return 16;
  if (status === 429 || status === 502 || status === 503 || status === 504) return 14;
  if (status === 400) return 3;
  return 7;
}

export function localReply(
  reason: ReplyReason,
  status: number,
  body: string,
  headers: readonly HeaderPair[] = noHeaders,
): LocalReply {
  return { kind: 'local_reply', reason, status, code: codeForStatus(status), headers, body };
}

/**
 * A small JSON error body; `error` is one of the documented codes (`docs/errors.md`), `message`
 * must be safe to show to the client.
 */
export function jsonReply(
  reason: ReplyReason,
  status: number,
  error: ClientErrorCode,
  message: string,
  headers: readonly HeaderPair[] = noHeaders,
): LocalReply {
  return localReply(reason, status, JSON.stringify({ error, message }), [
    ['content-type', 'application/json'],
    ...headers,
  ]);
}

/** The title of a refusal's page by its status: what happened, in a few words. */
export function pageTitleFor(status: number): string {
  if (status === 400) return 'Bad request';
  if (status === 403) return 'Access denied';
  if (status === 503) return 'Service temporarily unavailable';
  return 'Request refused';
}

/**
 * A refusal a person may meet in a browser: JSON `{error, message}` for an API client, a page
 * (rendered by the pipeline) for a browser navigation. A 403 offers to switch account.
 */
export function refusalReply(
  reason: ReplyReason,
  status: number,
  error: ClientErrorCode,
  message: string,
  headers: readonly HeaderPair[] = noHeaders,
): LocalReply {
  const page: PageContent =
    status === 403
      ? { title: pageTitleFor(status), message, switchAccount: true }
      : { title: pageTitleFor(status), message };
  return { ...jsonReply(reason, status, error, message, headers), page };
}

/**
 * The answer to a request a catalogue error stopped: its status, `{error, message}` and, for a
 * 503, `Retry-After`.
 */
export function errorReply(error: AuthzError): LocalReply {
  return catalogueReply(error.code, error.retryAfterSeconds);
}

/**
 * A provider outage, the same answer wherever it is met (login, session refresh, bearer keys or
 * introspection): 503 `idp_unavailable` with `Retry-After`.
 */
export function providerUnavailable(retryAfterSeconds: number): LocalReply {
  return catalogueReply('IDP_UNAVAILABLE', Math.max(1, Math.ceil(retryAfterSeconds)));
}

function catalogueReply(code: ErrorCode, retryAfterSeconds: number): LocalReply {
  const { status, message } = errorCatalogue[code];
  const headers: HeaderPair[] = status === 503 ? [['retry-after', String(retryAfterSeconds)]] : [];
  const reason = status === 503 ? 'unavailable' : status === 400 ? 'bad_request' : 'forbidden';
  return refusalReply(reason, status, clientErrorCode(code), message, headers);
}

export function redirect(
  reason: ReplyReason,
  location: string,
  headers: readonly HeaderPair[] = noHeaders,
): LocalReply {
  return localReply(reason, 302, '', [['location', location], ...headers]);
}

/** One `set-cookie` header per cookie line. */
export function setCookies(lines: readonly string[]): HeaderPair[] {
  return lines.map((line) => ['set-cookie', line] as const);
}

/**
 * Marks a verdict as handed out more than once (a constant, or the last allow of a hot session
 * or token): it and its lists are frozen, so nothing can change it under a transport that keeps
 * its encoding with it (see `CheckResponseEncoder`).
 */
export function shared<V extends Verdict>(verdict: V): V {
  if (verdict.kind === 'allow') {
    Object.freeze(verdict.upstreamHeaders);
    Object.freeze(verdict.removeHeaders);
    Object.freeze(verdict.responseHeaders);
    Object.freeze(verdict.metadata);
  } else {
    Object.freeze(verdict.headers);
  }
  return Object.freeze(verdict);
}
