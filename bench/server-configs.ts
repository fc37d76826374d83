/** The configurations the benchmarks run the server with, and the secrets they share. */
import type { TestProvider } from '../dev/test-provider.ts';

export const sessionSecret = 'Ux6Gz1Rk8WpD3nLq0VtJ5bMh9SyC2fAe7KoQi4EwNrT';
export const clientSecret = 'bench-client-secret-long-enough-0123';
export const apiAudience = 'https://api.example.com';

/** The memory-store server's apps: a cookie-session web app and a bearer API (DPoP accepted). */
export function memoryServerConfig(
  issuer: string,
  options: { readonly assertions?: boolean } = {},
): Record<string, unknown> {
  // Signed upstream assertions on both apps, with a generated key: the bench's one replica.
  const assertion =
    options.assertions === true
      ? { upstreamAssertion: { audience: 'https://upstream.example.com' } }
      : {};
  return {
    log: { level: 'info' },
    apps: [
      {
        name: 'web',
        match: { hosts: ['web.example.com'] },
        oidc: { issuer, clientId: 'web', clientSecret, probeInterval: '1h' },
        session: { secrets: [sessionSecret] },
        publicPaths: [{ prefix: '/public/' }],
        ...assertion,
      },
      {
        name: 'api',
        match: { hosts: ['api.example.com'] },
        oidc: { issuer, clientId: 'api', clientSecret, probeInterval: '1h' },
        session: { secrets: [sessionSecret] },
        bearer: { enabled: true, audiences: [apiAudience], dpop: { enabled: true } },
        ...assertion,
      },
    ],
  };
}

/** The Redis-store server: one app whose sessions live in the store (the cookie holds a ticket). */
export function redisServerConfig(issuer: string, redisUrl: string): Record<string, unknown> {
  return {
    log: { level: 'info' },
    store: { type: 'redis', redis: { url: redisUrl } },
    apps: [
      {
        name: 'srv',
        match: { hosts: ['srv.example.com'] },
        oidc: { issuer, clientId: 'srv', clientSecret, probeInterval: '1h' },
        session: { store: 'server', secrets: [sessionSecret] },
      },
    ],
  };
}

/** The hot bearer scenario's token: a provider-signed `at+jwt` for the API app, valid an hour. */
export function benchBearerToken(provider: TestProvider): Promise<string> {
  return provider.signJwt(
    {
      sub: 'svc-bench',
      aud: apiAudience,
      client_id: 'api',
      scope: 'api:read',
      jti: 'bench-token-1',
      exp: Math.floor(Date.now() / 1000) + 3_600,
    },
    { typ: 'at+jwt' },
  );
}

/** The DPoP scenario's token: like {@link benchBearerToken}, bound to the key of thumbprint `jkt`. */
export function benchDpopToken(provider: TestProvider, jkt: string): Promise<string> {
  return provider.signJwt(
    {
      sub: 'svc-bench',
      aud: apiAudience,
      client_id: 'api',
      scope: 'api:read',
      jti: 'bench-dpop-token-1',
      cnf: { jkt },
      exp: Math.floor(Date.now() / 1000) + 3_600,
    },
    { typ: 'at+jwt' },
  );
}

/** `count` distinct provider-signed `at+jwt`s for the API app, of subjects `svc-<i>`, valid an hour. */
export async function benchBearerTokens(provider: TestProvider, count: number): Promise<string[]> {
  const exp = Math.floor(Date.now() / 1000) + 3_600;
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    tokens.push(
      await provider.signJwt(
        {
          sub: `svc-${i}`,
          aud: apiAudience,
          client_id: 'api',
          scope: 'api:read',
          jti: `bench-token-${i}-of-${count}`,
          exp,
        },
        { typ: 'at+jwt' },
      ),
    );
  }
  return tokens;
}

/**
 * `count` distinct DPoP-bound `at+jwt`s for the API app, of subjects `svc-dpop-<i>`, all bound to
 * the key of thumbprint `jkt`, valid an hour.
 */
export async function benchDpopTokens(
  provider: TestProvider,
  jkt: string,
  count: number,
): Promise<string[]> {
  const exp = Math.floor(Date.now() / 1000) + 3_600;
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    tokens.push(
      await provider.signJwt(
        {
          sub: `svc-dpop-${i}`,
          aud: apiAudience,
          client_id: 'api',
          scope: 'api:read',
          jti: `bench-dpop-token-${i}-of-${count}`,
          cnf: { jkt },
          exp,
        },
        { typ: 'at+jwt' },
      ),
    );
  }
  return tokens;
}
