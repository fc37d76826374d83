/**
 * The error catalogue. Every failure the server reports carries a stable `code`, the HTTP status
 * a client would see, and a message safe to show; `detail` is for logs only.
 */

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'REQUEST_MALFORMED'
  | 'IDP_UNAVAILABLE'
  | 'IDP_ERROR'
  | 'STORE_UNAVAILABLE'
  | 'SESSION_INVALID'
  | 'SESSION_TOO_LARGE'
  | 'STATE_INVALID'
  | 'TOKEN_INVALID'
  | 'INTERNAL';

export class AuthzError extends Error {
  readonly code: ErrorCode;
  /** HTTP status a client sees when this error decides a request. */
  readonly status: number;
  /** Text safe to show to the client. */
  readonly publicMessage: string;
  /** For a 503: when trying again makes sense, in seconds (`Retry-After`). */
  readonly retryAfterSeconds: number;

  constructor(
    code: ErrorCode,
    status: number,
    publicMessage: string,
    options?: { cause?: unknown; detail?: string; retryAfterSeconds?: number },
  ) {
    super(
      options?.detail ?? publicMessage,
      options?.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'AuthzError';
    this.code = code;
    this.status = status;
    this.publicMessage = publicMessage;
    this.retryAfterSeconds = Math.max(1, Math.ceil(options?.retryAfterSeconds ?? 5));
  }
}

/** One problem in a configuration, with the path that names where it is. */
export interface ConfigProblem {
  /** e.g. `apps[1].oidc.issuer` */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends AuthzError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super('CONFIG_INVALID', 500, 'invalid configuration', {
      detail: problems.map((p) => `${p.path}: ${p.message}`).join('\n'),
    });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
