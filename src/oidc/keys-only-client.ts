/**
 * The provider side of an API-only app (no `oidc.clientId`): its discovery and its keys, which
 * bearer tokens are verified with, and nothing of a client. The login methods are never called
 * for such an app (it has no login, callback or logout path); they throw if they are.
 */
import type { OidcClient } from './oidc-client.ts';
import type { Provider } from './provider.ts';

const NO_CLIENT = 'an API-only app has no OAuth client';

function noClient(): never {
  throw new Error(NO_CLIENT);
}

function refused(): Promise<never> {
  return Promise.reject(new Error(NO_CLIENT));
}

export function createKeysOnlyClient(provider: Provider, appName: string): OidcClient {
  return {
    issuer: provider.issuer,
    clientId: '',
    ready: provider.ready,
    getKey: provider.getKey,
    status: () => ({ app: appName, ...provider.status() }),
    authorizationLocation: noClient,
    pushesAuthorization: () => false,
    pushAuthorization: refused,
    exchangeCode: refused,
    refresh: refused,
    revoke: refused,
    endSessionUrl: noClient,
    verifyLogoutToken: refused,
  };
}
