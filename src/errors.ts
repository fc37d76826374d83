/**
 * The error catalogue: one class per code. Every failure the server reports carries a stable
 * `code`, the HTTP status a client would see and a message safe to show, all fixed by its class;
 * `detail` (the `message`) is for logs only. The catalogue is documented in `docs/errors.md`,
 * and a test keeps the two equal.
 */

/** Status, public message and client-facing `error` of each code: the one place they are set. */
export const errorCatalogue = Object.freeze({
  CONFIG_INVALID: { status: 500, message: 'invalid configuration' },
  IDP_UNAVAILABLE: {
    status: 503,
    message: 'the identity provider is unavailable, try again shortly',
  },
  IDP_ERROR: { status: 502, message: 'the identity provider refused the request' },
  STORE_UNAVAILABLE: { status: 503, message: 'session store unavailable, try again shortly' },
  SESSION_TOO_LARGE: { status: 431, message: 'the session is too large for the cookie store' },
  STATE_INVALID: {
    status: 400,
    message: 'the login could not be completed, please start again',
  },
  TOKEN_INVALID: { status: 401, message: 'the token could not be validated' },
  BUDGET_EXCEEDED: {
    status: 503,
    message: 'the request could not be decided in time, try again shortly',
  },
  INTERNAL: { status: 500, message: 'internal error' },
} as const);

export type ErrorCode = keyof typeof errorCatalogue;

/**
 * The `error` of the JSON bodies the pipeline answers with itself rather than from an
 * {@link AuthzError}: the OAuth-style codes of RFC 6749 §5.2 and RFC 6750 §3.1 where one fits.
 */
const replyErrorCodes = Object.freeze([
  'bad_request',
  'forbidden',
  'unauthenticated',
  'invalid_request',
  'invalid_token',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'insufficient_scope',
  'insufficient_user_authentication',
  'too_many_requests',
] as const);

/** Every `error` a response body may carry. */
export type ClientErrorCode = (typeof replyErrorCodes)[number] | Lowercase<ErrorCode>;

/** The `error` a client reads for a catalogue code: the code in lower case. */
export function clientErrorCode(code: ErrorCode): Lowercase<ErrorCode> {
  return code.toLowerCase() as Lowercase<ErrorCode>;
}

/** Every `error` a response body may carry, each once; `docs/errors.md` lists the same. */
export const clientErrorCodes: readonly ClientErrorCode[] = Object.freeze([
  ...new Set<ClientErrorCode>([
    ...(Object.keys(errorCatalogue) as ErrorCode[]).map(clientErrorCode),
    ...replyErrorCodes,
  ]),
]);

/** What every catalogue error may be told besides its code. */
interface AuthzErrorOptions {
  /** For logs only; the public message by default. */
  readonly detail?: string;
  readonly cause?: unknown;
  readonly retryAfterSeconds?: number;
}

/**
 * The base of the catalogue. Not constructible: a failure is raised as the subclass of its code
 * (`new IdpUnavailableError(…)`), so code, status and public message always go together.
 */
export abstract class AuthzError extends Error {
  abstract readonly code: ErrorCode;
  /** HTTP status a client sees when this error decides a request. */
  readonly status: number;
  /** Text safe to show to the client. */
  readonly publicMessage: string;
  /** For a 503: when trying again makes sense, in seconds (`Retry-After`). */
  readonly retryAfterSeconds: number;

  protected constructor(code: ErrorCode, options: AuthzErrorOptions) {
    const { status, message } = errorCatalogue[code];
    super(options.detail ?? message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.publicMessage = message;
    this.retryAfterSeconds = Math.max(1, Math.ceil(options.retryAfterSeconds ?? 5));
  }
}

/** The base of the class of `code`: the code on the class (static) and on each error, one value. */
function catalogued<C extends ErrorCode>(code: C) {
  abstract class CataloguedError extends AuthzError {
    static readonly code = code;
    readonly code = code;

    protected constructor(options: AuthzErrorOptions) {
      super(code, options);
    }
  }
  return CataloguedError;
}

/** One problem in a configuration, with the path that names where it is. */
export interface ConfigProblem {
  /** e.g. `apps[1].oidc.issuer` */
  readonly path: string;
  readonly message: string;
}

/** `CONFIG_INVALID`: the configuration has problems; all of them, each with its path. */
export class ConfigError extends catalogued('CONFIG_INVALID') {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super({ detail: problems.map((p) => `${p.path}: ${p.message}`).join('\n') });
    this.problems = problems;
  }
}

/** Which provider call failed. */
export type IdpEndpoint =
  | 'discovery'
  | 'jwks'
  | 'token'
  | 'pushed_authorization'
  | 'revocation'
  | 'introspection'
  | 'userinfo'
  | 'authorization'
  | 'id_token'
  | 'logout_token';

/** Why the provider could not be used. */
export type UnavailableReason =
  | 'network'
  | 'timeout'
  | 'http_status'
  | 'invalid_response'
  | 'discovery_pending'
  | 'closed'
  | 'circuit_open';

/**
 * `IDP_UNAVAILABLE` (503): the provider could not be reached or answered like a failing server
 * (network error, timeout, 5xx, 429, unparseable body), or its breaker is open. Worth retrying;
 * never a reason to end a session.
 */
export class IdpUnavailableError extends catalogued('IDP_UNAVAILABLE') {
  readonly endpoint: IdpEndpoint;
  readonly reason: UnavailableReason;
  /** HTTP status when the provider answered, else undefined. */
  readonly httpStatus: number | undefined;

  constructor(
    endpoint: IdpEndpoint,
    reason: UnavailableReason,
    options: AuthzErrorOptions & { readonly httpStatus?: number } = {},
  ) {
    const status = options.httpStatus === undefined ? '' : ` (HTTP ${options.httpStatus})`;
    const detail = options.detail === undefined ? '' : `: ${options.detail}`;
    super({ ...options, detail: `${endpoint}: ${reason}${status}${detail}` });
    this.endpoint = endpoint;
    this.reason = reason;
    this.httpStatus = options.httpStatus;
  }
}

/**
 * `IDP_ERROR` (502): the provider answered with an OAuth error (RFC 6749 §5.2 or §4.1.2.1),
 * such as `invalid_grant` on a refresh or `access_denied` on a callback.
 */
export class IdpError extends catalogued('IDP_ERROR') {
  readonly endpoint: IdpEndpoint;
  /** The OAuth `error` code, e.g. `invalid_grant`. */
  readonly oauthError: string;
  /** The provider's `error_description`; the provider's words, not a secret. */
  readonly oauthErrorDescription: string | undefined;
  readonly httpStatus: number | undefined;
  /** What the operator may check, for the log line (never a secret). */
  readonly hint: string | undefined;

  constructor(
    endpoint: IdpEndpoint,
    oauthError: string,
    options: { description?: string; httpStatus?: number; hint?: string; cause?: unknown } = {},
  ) {
    super({
      detail:
        `${endpoint}: ${oauthError}${options.description === undefined ? '' : ` (${options.description})`}` +
        (options.hint === undefined ? '' : `; hint: ${options.hint}`),
      cause: options.cause,
    });
    this.endpoint = endpoint;
    this.oauthError = oauthError;
    this.oauthErrorDescription = options.description;
    this.httpStatus = options.httpStatus;
    this.hint = options.hint;
  }
}

/** `TOKEN_INVALID` (401): an ID, logout or access token failed validation; `reason` says which check. */
export class TokenInvalidError extends catalogued('TOKEN_INVALID') {
  readonly endpoint: IdpEndpoint;
  readonly reason: string;

  constructor(endpoint: IdpEndpoint, reason: string, options: { cause?: unknown } = {}) {
    super({ detail: `${endpoint}: ${reason}`, cause: options.cause });
    this.endpoint = endpoint;
    this.reason = reason;
  }
}

/** `STATE_INVALID` (400): the authorization response did not carry this browser's `state`. */
export class StateMismatchError extends catalogued('STATE_INVALID') {
  constructor() {
    super({ detail: 'authorization response state does not match the login state' });
  }
}

/** Why the store was unavailable: it failed, it did not answer in time, or its breaker is open. */
/**
 * `request_deadline`: the request had no more time to wait for the store (its budget ran out
 * first); it says nothing about the store's health.
 */
export type StoreUnavailableReason = 'failure' | 'timeout' | 'circuit_open' | 'request_deadline';

/**
 * `STORE_UNAVAILABLE` (503). Requests that need the store (server sessions) answer 503 with
 * `Retry-After: retryAfterSeconds`; never a login, which would only loop.
 */
export class StoreUnavailableError extends catalogued('STORE_UNAVAILABLE') {
  readonly reason: StoreUnavailableReason;

  constructor(
    reason: StoreUnavailableReason,
    options: { retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super({
      detail: `store: ${reason}`,
      cause: options.cause,
      retryAfterSeconds: (options.retryAfterMs ?? 0) / 1000,
    });
    this.reason = reason;
  }
}

/**
 * `SESSION_TOO_LARGE` (431): a cookie session, sealed, needs more cookie chunks than the store
 * allows (e.g. an ID token with 1,500 groups). Browsers cap a cookie at about 4 KB and Envoy caps
 * request headers (60 KiB by default), so the session cannot be kept client-side: the app needs
 * `session.store: server`. 431 (RFC 6585 §5): the cookies would make every later request's
 * headers too large.
 */
export class SessionTooLargeError extends catalogued('SESSION_TOO_LARGE') {
  /** Length of the sealed session, in characters. */
  readonly sealedLength: number;
  /** The most characters the cookie store holds. */
  readonly limit: number;

  constructor(sealedLength: number, limit: number) {
    super({
      detail: `sealed session of ${sealedLength} characters exceeds the cookie store's ${limit}; set session.store: server`,
    });
    this.sealedLength = sealedLength;
    this.limit = limit;
  }
}

/**
 * `BUDGET_EXCEEDED` (503): a Check was not decided within `request.budget` (a dependency is slow
 * or hung). The work goes on; the next request uses what it produced.
 */
export class BudgetExceededError extends catalogued('BUDGET_EXCEEDED') {
  constructor(budgetMs: number) {
    super({ detail: `not decided within request.budget (${budgetMs}ms)`, retryAfterSeconds: 1 });
  }
}

/** `INTERNAL` (500): a bug on our side surfaced where a verdict was expected. */
export class InternalError extends catalogued('INTERNAL') {
  constructor(detail: string, options: { cause?: unknown } = {}) {
    super({ detail, cause: options.cause });
  }
}
