/** Shared set-up for the OIDC client tests: a provider, a client for it, and a scripted login. */
import { startTestProvider } from '../../dev/test-provider.ts';
import type { TestClient, TestProvider, TestProviderOptions } from '../../dev/test-provider.ts';
import { createOidcClient } from '../../src/oidc/oidc-client.ts';
import type {
  ExchangeResult,
  OidcClient,
  OidcClientDeps,
  OidcClientOptions,
} from '../../src/oidc/oidc-client.ts';
import { createProvider } from '../../src/oidc/provider.ts';
import type { Provider, ProviderDeps } from '../../src/oidc/provider.ts';
import { createLoginSecrets } from '../../src/oidc/pkce.ts';
import type { LoginSecrets } from '../../src/oidc/pkce.ts';
import { scriptedLogin } from '../support/scripted-login.ts';
import type { BrowserStepTiming, CookieJar } from '../support/scripted-login.ts';

export const REDIRECT_URI = 'http://127.0.0.1:18080/oauth2/callback';
export const POST_LOGOUT_URI = 'http://127.0.0.1:18080/';
export const SECRET = 'a-client-secret-that-is-long-enough';

/** A confidential client using client_secret_basic. */
export function basicClient(overrides: Partial<TestClient> = {}): TestClient {
  return {
    clientId: 'web',
    clientSecret: SECRET,
    authMethod: 'client_secret_basic',
    redirectUris: [REDIRECT_URI],
    postLogoutRedirectUris: [POST_LOGOUT_URI],
    ...overrides,
  };
}

export function startProvider(options: Partial<TestProviderOptions> = {}): Promise<TestProvider> {
  return startTestProvider({ clients: [basicClient()], ...options });
}

/** The options of a client with a provider of its own: the app's `oidc` block. */
export type StandaloneClientOptions = OidcClientOptions & {
  readonly tlsInsecureSkipVerify: boolean;
};

/** What a standalone client and its provider are built with. */
export type StandaloneClientDeps = OidcClientDeps & ProviderDeps;

/** A client whose provider no other client uses; closing the client closes the provider. */
export interface StandaloneClient extends OidcClient {
  readonly provider: Provider;
  close(): void;
}

/** Client options matching {@link basicClient} at `provider`. */
export function clientOptions(
  provider: { issuer: string },
  overrides: Partial<StandaloneClientOptions> = {},
): StandaloneClientOptions {
  return {
    issuer: provider.issuer,
    clientId: 'web',
    clientSecret: SECRET,
    clientAuth: 'client_secret_basic',
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    extraAuthParams: {},
    idTokenAlgs: ['RS256', 'ES256'],
    clockSkew: 30_000,
    tlsInsecureSkipVerify: false,
    ...overrides,
  };
}

export function clientDeps(overrides: Partial<StandaloneClientDeps> = {}): StandaloneClientDeps {
  return {
    now: () => Date.now(),
    fetchTimeoutMs: 2_000,
    discoveryRetry: { initialDelayMs: 20, maxDelayMs: 200 },
    ...overrides,
  };
}

/** Creates a provider for `options.issuer` and one client at it. */
export function createStandaloneClient(
  options: StandaloneClientOptions,
  deps: StandaloneClientDeps,
): StandaloneClient {
  const provider = createProvider(
    {
      issuer: options.issuer,
      name: options.appName ?? options.clientId,
      tlsInsecureSkipVerify: options.tlsInsecureSkipVerify,
      tenantIssuer: options.provider === 'entra',
    },
    deps,
  );
  try {
    return Object.assign(createOidcClient(provider, options, deps), {
      provider,
      close: () => provider.close(),
    });
  } catch (error) {
    provider.close();
    throw error;
  }
}

/** Creates a client with a provider of its own and waits for discovery. */
export async function readyClient(
  provider: { issuer: string },
  overrides: Partial<StandaloneClientOptions> = {},
  deps: Partial<StandaloneClientDeps> = {},
): Promise<StandaloneClient> {
  const client = createStandaloneClient(clientOptions(provider, overrides), clientDeps(deps));
  await client.ready;
  return client;
}

export interface LoggedIn {
  readonly secrets: LoginSecrets;
  readonly authorizationUrl: URL;
  readonly callbackUrl: URL;
  readonly jar: CookieJar;
  readonly steps: readonly BrowserStepTiming[];
}

/** Builds the authorization URL and signs in through the provider's pages. */
export async function login(client: OidcClient, loginName = 'alice'): Promise<LoggedIn> {
  const secrets = createLoginSecrets();
  const authorizationUrl = new URL(
    client.authorizationLocation({
      redirectUri: REDIRECT_URI,
      state: secrets.state,
      nonce: secrets.nonce,
      codeChallenge: secrets.codeChallenge,
    }),
  );
  const result = await scriptedLogin(authorizationUrl, { login: loginName });
  return { secrets, authorizationUrl, ...result };
}

/** Signs in and exchanges the code. */
export async function loginAndExchange(
  client: OidcClient,
  loginName = 'alice',
): Promise<LoggedIn & { result: ExchangeResult }> {
  const loggedIn = await login(client, loginName);
  const result = await client.exchangeCode({
    params: loggedIn.callbackUrl.searchParams,
    redirectUri: REDIRECT_URI,
    codeVerifier: loggedIn.secrets.codeVerifier,
    expectedState: loggedIn.secrets.state,
    expectedNonce: loggedIn.secrets.nonce,
  });
  return { ...loggedIn, result };
}

/** A port nobody listens on right now. */
export { freePort } from '../support/redis-servers.ts';

/** Milliseconds taken by `fn`, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await fn();
  return [value, Math.round((performance.now() - started) * 10) / 10];
}
