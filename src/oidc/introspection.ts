/** RFC 7662 token introspection for opaque bearer tokens, through the app's introspection breaker. */
import { IdpError, IdpUnavailableError, type UnavailableReason } from '../errors.ts';
import type { IdpFetch } from './idp-fetch.ts';
import { IdpTransportError } from './oidc-errors.ts';
import { isRecord } from '../is-record.ts';

export interface IntrospectionOptions {
  /** The provider's issuer; the endpoint comes from its discovery document. */
  readonly issuer: string;
  /** Client credentials for the endpoint (`client_secret_basic`, RFC 7662 §2.1). */
  readonly clientId: string;
  readonly clientSecret: string;
}

export interface IntrospectionDeps {
  readonly fetch: IdpFetch;
  /** Runs each call to the provider (the introspection breaker); default runs it as is. */
  readonly guard?: <T>(call: () => Promise<T>) => Promise<T>;
}

/** A client for one provider's introspection endpoint. */
export interface IntrospectionClient {
  /**
   * The provider's answer for `token`: its claims when `active` is true, `undefined` when the
   * token is not active (RFC 7662 §2.2).
   * @throws AuthzError `IDP_UNAVAILABLE` (503) when the provider cannot answer (network, timeout,
   *   5xx, 429, open breaker); `IDP_ERROR` (502) when it refuses our client (e.g. a wrong secret).
   */
  introspect(token: string): Promise<Readonly<Record<string, unknown>> | undefined>;
}

function unavailable(
  reason: UnavailableReason,
  detail?: string,
  cause?: unknown,
): IdpUnavailableError {
  return new IdpUnavailableError('introspection', reason, {
    ...(detail === undefined ? {} : { detail }),
    cause,
  });
}

// RFC 6749 §2.3.1: each part is form-urlencoded before the Basic encoding.
function basicCredentials(clientId: string, clientSecret: string): string {
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch (err) {
    throw unavailable('invalid_response', 'response is not JSON', err);
  }
}

/**
 * Builds the client. The endpoint is read from the issuer's discovery document on first use
 * (one lookup shared by concurrent callers, retried on the next call after a failure); every
 * provider call runs through `guard`, so an outage opens the breaker and later calls fail fast
 * with 503 instead of waiting on a dead provider.
 */
export function createIntrospectionClient(
  options: IntrospectionOptions,
  deps: IntrospectionDeps,
): IntrospectionClient {
  const guard = deps.guard ?? (<T>(call: () => Promise<T>) => call());
  const authorization = basicCredentials(options.clientId, options.clientSecret);
  const discoveryUrl = new URL(
    '.well-known/openid-configuration',
    `${options.issuer.replace(/\/$/, '')}/`,
  ).href;

  const call = async (url: string, init: Parameters<IdpFetch>[1]): Promise<Response> => {
    let response: Response;
    try {
      response = await deps.fetch(url, init);
    } catch (err) {
      throw unavailable(err instanceof IdpTransportError ? err.reason : 'network', undefined, err);
    }
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      await response.body?.cancel();
      throw unavailable('http_status', `HTTP ${response.status}`);
    }
    return response;
  };

  let endpoint: Promise<string> | undefined;
  const lookUpEndpoint = (): Promise<string> => {
    const pending = guard(async () => {
      const response = await call(discoveryUrl, {
        method: 'GET',
        headers: { accept: 'application/json' },
      });
      const metadata = await readJson(response);
      const url = isRecord(metadata) ? metadata['introspection_endpoint'] : undefined;
      if (!response.ok || typeof url !== 'string') {
        throw unavailable('invalid_response', 'no introspection_endpoint in discovery');
      }
      return url;
    });
    endpoint = pending;
    // Only the lookup that filled the slot may clear it, so a late failure never drops a newer one.
    pending.catch(() => {
      if (endpoint === pending) endpoint = undefined;
    });
    return pending;
  };

  return {
    async introspect(token) {
      const url = await (endpoint ?? lookUpEndpoint());
      return guard(async () => {
        const response = await call(url, {
          method: 'POST',
          headers: {
            authorization,
            accept: 'application/json',
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        });
        const body = await readJson(response);
        if (!response.ok) {
          const error = isRecord(body) && typeof body['error'] === 'string' ? body['error'] : '';
          throw new IdpError('introspection', error === '' ? `HTTP ${response.status}` : error, {
            httpStatus: response.status,
          });
        }
        if (!isRecord(body)) throw unavailable('invalid_response', 'response is not a JSON object');
        return body['active'] === true ? body : undefined;
      });
    },
  };
}
