/** RFC 7662 token introspection for opaque bearer tokens, at the app's shared provider. */
import { ClientSecretBasic, tokenIntrospection } from 'openid-client';
import type { Configuration } from 'openid-client';
import { IdpUnavailableError } from '../errors.ts';
import type { Provider } from './provider.ts';

export interface IntrospectionOptions {
  /** Client credentials for the endpoint (`client_secret_basic`, RFC 7662 §2.1). */
  readonly clientId: string;
  readonly clientSecret: string;
}

/** A client for one provider's introspection endpoint. */
export interface IntrospectionClient {
  /**
   * The provider's answer for `token`: its claims when `active` is true, `undefined` when the
   * token is not active (RFC 7662 §2.2).
   * @throws IdpUnavailableError (`IDP_UNAVAILABLE`, 503) when the provider cannot answer
   *   (network, timeout, 5xx, 429, a body that is not JSON, open breaker); IdpError
   *   (`IDP_ERROR`, 502) when it refuses our client (e.g. a wrong secret); TokenInvalidError
   *   when the answer is no introspection response (no boolean `active`).
   */
  introspect(token: string): Promise<Readonly<Record<string, unknown>> | undefined>;
}

/**
 * Builds the client. The endpoint comes from the provider's discovery document; every call runs
 * through the provider's `introspection` guard, so an outage opens that breaker and later calls
 * fail fast with 503 instead of waiting on a dead provider.
 */
export function createIntrospectionClient(
  provider: Provider,
  options: IntrospectionOptions,
): IntrospectionClient {
  let config: Configuration | undefined;
  return {
    async introspect(token) {
      const current = (config ??= provider.configure(
        { clientId: options.clientId, metadata: {}, auth: ClientSecretBasic(options.clientSecret) },
        'introspection',
      ));
      if (current.serverMetadata().introspection_endpoint === undefined) {
        throw new IdpUnavailableError('introspection', 'invalid_response', {
          detail: 'no introspection_endpoint in discovery',
        });
      }
      const response = await provider.call('introspection', 'introspection', () =>
        tokenIntrospection(current, token, { token_type_hint: 'access_token' }),
      );
      return response.active === true ? response : undefined;
    },
  };
}
