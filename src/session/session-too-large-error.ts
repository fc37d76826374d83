/** A session that does not fit in the cookies a browser keeps for it. */
import { AuthzError } from '../errors.ts';

/**
 * Thrown when a cookie session, sealed, needs more cookie chunks than the store allows (e.g. an
 * ID token with 1,500 groups). Browsers cap a cookie at about 4 KB and Envoy caps request
 * headers (60 KiB by default), so the session cannot be kept client-side: the app needs
 * `session.store: server`. Answered with 431 (RFC 6585 §5): the cookies would make every later
 * request's headers too large.
 */
export class SessionTooLargeError extends AuthzError {
  /** Length of the sealed session, in characters. */
  readonly sealedLength: number;
  /** The most characters the cookie store holds. */
  readonly limit: number;

  constructor(sealedLength: number, limit: number) {
    super('SESSION_TOO_LARGE', 431, 'the session is too large for the cookie store', {
      detail: `sealed session of ${sealedLength} characters exceeds the cookie store's ${limit}; set session.store: server`,
    });
    this.name = 'SessionTooLargeError';
    this.sealedLength = sealedLength;
    this.limit = limit;
  }
}
