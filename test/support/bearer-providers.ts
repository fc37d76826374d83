/**
 * The two OpenID Providers that bearer-token tests take tokens from, and the apps that accept
 * them: `api` verifies the JWT access tokens of one provider, `orders` introspects the opaque
 * ones of the other (RFC 7662).
 */
import {
  startTestProvider,
  type TestClient,
  type TestProvider,
  type TestProviderOptions,
} from '../../dev/test-provider.ts';
import assert from 'node:assert/strict';
import { testSessionSecret } from './test-server.ts';

/** The audience both providers issue access tokens for by default. */
const audience = 'https://api.example.com/';

/** The client secrets of `machine` (client credentials), `gateway` and `introspector`. */
export interface BearerSecrets {
  readonly machine: string;
  readonly gateway: string;
  readonly introspector: string;
}

export interface BearerProviders {
  /** Issues JWT access tokens; `gateway` signs users in there for the `api` app. */
  readonly jwt: TestProvider;
  /** Issues opaque access tokens, which `introspector` introspects for the `orders` app. */
  readonly opaque: TestProvider;
}

type ProviderExtras = Omit<
  TestProviderOptions,
  'clients' | 'defaultResource' | 'accessTokenFormat'
>;

/** Starts both providers, each with the `machine` client that gets tokens by client credentials. */
export async function startBearerProviders(
  secrets: BearerSecrets,
  options: { readonly jwt?: ProviderExtras; readonly opaque?: ProviderExtras } = {},
): Promise<BearerProviders> {
  const machine: TestClient = {
    clientId: 'machine',
    clientSecret: secrets.machine,
    redirectUris: [],
    grantTypes: ['client_credentials'],
  };
  const jwt = await startTestProvider({
    ...options.jwt,
    defaultResource: audience,
    clients: [
      machine,
      {
        clientId: 'gateway',
        clientSecret: secrets.gateway,
        redirectUris: ['https://api.example.com/oauth2/callback'],
      },
    ],
  });
  try {
    const opaque = await startTestProvider({
      ...options.opaque,
      defaultResource: audience,
      accessTokenFormat: 'opaque',
      clients: [
        machine,
        {
          clientId: 'introspector',
          clientSecret: secrets.introspector,
          redirectUris: [],
          grantTypes: ['client_credentials'],
        },
      ],
    });
    return { jwt, opaque };
  } catch (error) {
    await jwt.close();
    throw error;
  }
}

/**
 * `api` (on `api.example.com`, JWTs of {@link BearerProviders.jwt}) and `orders` (on
 * `orders.example.com`, introspected tokens of {@link BearerProviders.opaque}); `api.bearer`
 * adds to the `api` app's bearer settings, `api.app` to the rest of it.
 */
export function bearerAppConfigs(
  providers: BearerProviders,
  secrets: BearerSecrets,
  api: {
    readonly bearer?: Record<string, unknown>;
    readonly app?: Record<string, unknown>;
  } = {},
): Record<string, unknown>[] {
  return [
    {
      name: 'api',
      match: { hosts: ['api.example.com'] },
      oidc: { issuer: providers.jwt.issuer, clientId: 'gateway', clientSecret: secrets.gateway },
      session: { secrets: [testSessionSecret] },
      ...api.app,
      bearer: { enabled: true, audiences: [audience], ...api.bearer },
    },
    {
      name: 'orders',
      match: { hosts: ['orders.example.com'] },
      oidc: {
        issuer: providers.opaque.issuer,
        clientId: 'introspector',
        clientSecret: secrets.introspector,
      },
      session: { secrets: [testSessionSecret] },
      bearer: {
        enabled: true,
        audiences: [audience],
        introspection: {
          enabled: true,
          clientId: 'introspector',
          clientSecret: secrets.introspector,
        },
      },
    },
  ];
}

/**
 * An access token from `provider`'s token endpoint by the client credentials grant (client
 * authenticated with HTTP Basic); fails the test when the provider refuses.
 */
export async function clientCredentialsToken(
  provider: TestProvider,
  client: { readonly id: string; readonly secret: string },
  params: Readonly<Record<string, string>>,
): Promise<string> {
  const response = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
  const body = (await response.json()) as { access_token?: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(typeof body.access_token, 'string', JSON.stringify(body));
  return body.access_token as string;
}
