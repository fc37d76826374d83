/** The configurations the benchmarks run the server with, and the secrets they share. */

export const sessionSecret = 'bench-session-secret-0123456789-abcdefghij';
export const clientSecret = 'bench-client-secret-long-enough-0123';
export const apiAudience = 'https://api.example.com';

/** The memory-store server's apps: a cookie-session web app and a bearer API. */
export function memoryServerConfig(issuer: string): Record<string, unknown> {
  return {
    log: { level: 'info' },
    apps: [
      {
        name: 'web',
        match: { hosts: ['web.example.com'] },
        oidc: { issuer, clientId: 'web', clientSecret, probeInterval: '1h' },
        session: { secrets: [sessionSecret] },
        publicPaths: [{ prefix: '/public/' }],
      },
      {
        name: 'api',
        match: { hosts: ['api.example.com'] },
        oidc: { issuer, clientId: 'api', clientSecret, probeInterval: '1h' },
        session: { secrets: [sessionSecret] },
        bearer: { enabled: true, audiences: [apiAudience] },
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
