/** Failures talking to an OpenID Provider, classified once at the protocol boundary. */
import {
  AuthorizationResponseError,
  ClientError,
  ResponseBodyError,
  WWWAuthenticateChallengeError,
} from 'openid-client';
import { errors as joseErrors } from 'jose';
import {
  AuthzError,
  IdpError,
  IdpUnavailableError,
  InternalError,
  TokenInvalidError,
  type IdpEndpoint,
} from '../errors.ts';

/**
 * Raised by our HTTP layer when a request to the provider failed in transport; it carries no
 * endpoint, {@link classifyIdpFailure} adds the one the caller was talking to.
 */
export class IdpTransportError extends Error {
  readonly reason: 'network' | 'timeout' | 'http_status';
  readonly httpStatus: number | undefined;

  constructor(
    reason: 'network' | 'timeout' | 'http_status',
    options: { httpStatus?: number; cause?: unknown } = {},
  ) {
    super(
      `${reason}${options.httpStatus === undefined ? '' : ` (HTTP ${options.httpStatus})`}`,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'IdpTransportError';
    this.reason = reason;
    this.httpStatus = options.httpStatus;
  }
}

/** Statuses at which a provider is failing rather than refusing. */
function isServerSideStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

// oauth4webapi codes for a response that fails a check on its content (not its transport).
const VALIDATION_CODES = new Set([
  'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
  'OAUTH_JWT_TIMESTAMP_CHECK_FAILED',
  'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED',
  'OAUTH_INVALID_RESPONSE',
  'OAUTH_MISSING_SERVER_METADATA',
  'OAUTH_KEY_SELECTION_FAILED',
  'OAUTH_UNSUPPORTED_OPERATION',
]);
const MALFORMED_CODES = new Set([
  'OAUTH_RESPONSE_IS_NOT_JSON',
  'OAUTH_PARSE_ERROR',
  'OAUTH_RESPONSE_IS_NOT_CONFORM',
]);

function findInCauses<T>(err: unknown, match: (e: unknown) => e is T): T | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth += 1) {
    if (match(current)) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Turns whatever a provider call threw into the error catalogue: an {@link AuthzError} found in
 * the cause chain is kept as is (our fetch wrappers raise them), OAuth error responses become
 * {@link IdpError} (or {@link IdpUnavailableError} when the status says the server is failing),
 * failed checks on a token become {@link TokenInvalidError}, everything else is unavailability.
 */
export function classifyIdpFailure(err: unknown, endpoint: IdpEndpoint): AuthzError {
  const ours = findInCauses(err, (e): e is AuthzError => e instanceof AuthzError);
  if (ours !== undefined) return ours;
  if ((err as { code?: unknown } | undefined)?.code === 'EOPENBREAKER') {
    return new IdpUnavailableError(endpoint, 'circuit_open', { cause: err });
  }
  const transport = findInCauses(
    err,
    (e): e is IdpTransportError => e instanceof IdpTransportError,
  );
  if (transport !== undefined) {
    const cause = transport.cause instanceof Error ? transport.cause : undefined;
    const detail =
      (cause?.cause instanceof Error ? cause.cause.message : undefined) ?? cause?.message;
    return new IdpUnavailableError(endpoint, transport.reason, {
      ...(transport.httpStatus === undefined ? {} : { httpStatus: transport.httpStatus }),
      ...(detail === undefined ? {} : { detail }),
      cause: err,
    });
  }

  if (err instanceof ResponseBodyError) {
    if (isServerSideStatus(err.status) || err.error === 'temporarily_unavailable') {
      return new IdpUnavailableError(endpoint, 'http_status', {
        httpStatus: err.status,
        detail: err.error,
        cause: err,
      });
    }
    return new IdpError(endpoint, err.error, {
      ...(err.error_description === undefined ? {} : { description: err.error_description }),
      httpStatus: err.status,
      cause: err,
    });
  }
  if (err instanceof WWWAuthenticateChallengeError) {
    // A 401 with a challenge instead of a JSON body (RFC 6749 §5.2 allows it for invalid_client).
    if (isServerSideStatus(err.status)) {
      return new IdpUnavailableError(endpoint, 'http_status', {
        httpStatus: err.status,
        cause: err,
      });
    }
    const parameters = err.cause[0]?.parameters;
    return new IdpError(endpoint, parameters?.error ?? 'invalid_client', {
      ...(parameters?.error_description === undefined
        ? {}
        : { description: parameters.error_description }),
      httpStatus: err.status,
      cause: err,
    });
  }
  if (err instanceof AuthorizationResponseError) {
    return new IdpError('authorization', err.error, {
      ...(err.error_description === undefined ? {} : { description: err.error_description }),
      cause: err,
    });
  }
  if (err instanceof joseErrors.JOSEError) {
    if (err instanceof joseErrors.JWKSTimeout) {
      return new IdpUnavailableError('jwks', 'timeout', { cause: err });
    }
    return new TokenInvalidError(endpoint, err.code, { cause: err });
  }
  if (err instanceof ClientError) {
    const code = err.code ?? '';
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') {
      return new IdpUnavailableError(endpoint, 'timeout', { cause: err });
    }
    if (MALFORMED_CODES.has(code)) {
      const { cause } = err as { cause?: unknown };
      const httpStatus = cause instanceof Response ? cause.status : undefined;
      if (
        (endpoint === 'token' || endpoint === 'pushed_authorization') &&
        httpStatus !== undefined &&
        httpStatus >= 400 &&
        httpStatus < 500 &&
        !isServerSideStatus(httpStatus)
      ) {
        // RFC 6749 §5.2 asks for a JSON error body, but real providers refuse a dead refresh
        // token or code with a bare 4xx (Glewlwyd: 400, empty): by its status, a refusal. The
        // same holds for a pushed authorization request (RFC 9126 §2.3 uses the same errors).
        return new IdpError(endpoint, 'unknown_error', { httpStatus, cause: err });
      }
      return new IdpUnavailableError(
        endpoint,
        httpStatus !== undefined && isServerSideStatus(httpStatus)
          ? 'http_status'
          : 'invalid_response',
        { ...(httpStatus === undefined ? {} : { httpStatus }), detail: code, cause: err },
      );
    }
    if (VALIDATION_CODES.has(code)) {
      const reason =
        (err.cause instanceof Error ? err.cause.message : undefined) ?? `${code}: ${err.message}`;
      return new TokenInvalidError(endpoint === 'token' ? 'id_token' : endpoint, reason, {
        cause: err,
      });
    }
  }
  const timeout = findInCauses(
    err,
    (e): e is DOMException => e instanceof DOMException && e.name === 'TimeoutError',
  );
  if (timeout !== undefined) return new IdpUnavailableError(endpoint, 'timeout', { cause: err });
  const code = (err as { code?: unknown }).code;
  if (err instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_INVALID_ARG')) {
    // A bug on our side (a library rejected its arguments), not the provider's fault.
    return new InternalError(err.message, { cause: err });
  }
  return new IdpUnavailableError(endpoint, 'network', {
    detail: err instanceof Error ? err.message : 'unknown failure',
    cause: err,
  });
}
