/**
 * Pushed authorization requests (RFC 9126): a login's parameters go to the provider in a POST,
 * authenticated as the client is at the token endpoint, and the browser is sent with only
 * `client_id` and the `request_uri` the provider answered. Each login pushes its own request (its
 * state, nonce and PKCE challenge are its own), so a `request_uri` is never stored or reused,
 * whatever its `expires_in`.
 */
import { buildAuthorizationUrlWithPAR, type Configuration } from 'openid-client';
import { IdpUnavailableError, TokenInvalidError } from '../errors.ts';
import { classifyIdpFailure } from './oidc-errors.ts';

/**
 * Longest `request_uri` accepted, in characters: providers answer a URN of a few dozen
 * (`urn:ietf:params:oauth:request_uri:<random>`), and it goes into the 302's `Location`.
 */
export const MAX_REQUEST_URI_LENGTH = 512;

/** Why a provider's `request_uri` cannot go into a redirect, or `undefined` when it can. */
export function requestUriProblem(value: string | null): string | undefined {
  if (value === null || value === '') return 'no request_uri in the answer';
  if (value.length > MAX_REQUEST_URI_LENGTH) {
    return `a request_uri of ${value.length} characters (at most ${MAX_REQUEST_URI_LENGTH})`;
  }
  // Visible ASCII only: no space, control character (CR, LF, NUL) or anything to encode.
  if (!/^[\x21-\x7e]+$/.test(value)) return 'a request_uri with characters outside visible ASCII';
  return undefined;
}

/**
 * Pushes the authorization request `params` (every parameter of the login, `client_id`
 * included) with `config`'s client authentication and fetch, and returns the authorization URL
 * to redirect to. Meant to run inside the provider's guard: a refusal (4xx with an OAuth error)
 * is an `IdpError`, a failing server (5xx, timeout) an `IdpUnavailableError`, and so is an answer
 * that does not conform (not JSON, no usable `request_uri` or `expires_in`): the provider cannot
 * be used to log in, which is an outage of its endpoint, never a token problem.
 */
export async function pushAuthorizationRequest(
  config: Configuration,
  params: URLSearchParams,
): Promise<string> {
  let url: URL;
  try {
    url = await buildAuthorizationUrlWithPAR(config, params);
  } catch (error) {
    const failure = classifyIdpFailure(error, 'pushed_authorization');
    if (!(failure instanceof TokenInvalidError)) throw failure;
    throw new IdpUnavailableError('pushed_authorization', 'invalid_response', {
      detail: failure.reason,
      cause: error,
    });
  }
  const problem = requestUriProblem(url.searchParams.get('request_uri'));
  if (problem !== undefined) {
    throw new IdpUnavailableError('pushed_authorization', 'invalid_response', { detail: problem });
  }
  return url.href;
}
