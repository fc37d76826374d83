/**
 * Sessions for the realistic-scale workloads, minted without a provider round trip each: the
 * bench loads the same config document as the server under test and seals cookie sessions (or
 * writes server-session records to the same redis-server) with the app's own session codec and
 * secret, so the server opens them exactly as it opens a session it made after a login.
 */
import { loadConfig } from '../src/config/load.ts';
import type { AppConfig, Config } from '../src/config/schema.ts';
import { ExpiringLru } from '../src/expiring-lru.ts';
import { createLogger } from '../src/observability/logger.ts';
import { CookieSessions } from '../src/session/cookie-sessions.ts';
import { ServerSessions } from '../src/session/server-sessions.ts';
import { sessionBindingFor } from '../src/session/session-binding.ts';
import type { CachedSession } from '../src/session/session-cache.ts';
import type { Sessions } from '../src/session/sessions.ts';
import { createAppKeyspaces } from '../src/store/keyspaces.ts';
import { createRedisBackend } from '../src/store/redis-backend.ts';
import { jarFrom, opaqueTokenSession } from './session-profiles.ts';

/** The `sub` (and so `x-auth-request-user`) of minted session `i`. */
export const mintedUser = (i: number): string => `user-${i}`;

function configOf(document: Record<string, unknown>): Config {
  const loaded = loadConfig({ document }, {});
  if (!loaded.ok) throw new Error(`bench config invalid: ${JSON.stringify(loaded.problems)}`);
  return loaded.config;
}

function appOf(config: Config, name: string): AppConfig {
  const app = config.apps.find((a) => a.name === name);
  if (app === undefined) throw new Error(`no app ${name} in the bench config`);
  return app;
}

/**
 * `count` distinct sessions of app `appName` as the `cookie` header values a browser would send
 * (one user each, `user-<i>`, tokens valid an hour). With a server-session app the records are
 * written to the config's redis-server.
 */
export async function mintSessions(
  document: Record<string, unknown>,
  appName: string,
  count: number,
): Promise<string[]> {
  const config = configOf(document);
  const app = appOf(config, appName);
  const options = { ...app.session, binding: sessionBindingFor(config, app) };
  const redis =
    app.session.store === 'server'
      ? createRedisBackend(config.store.redis, { logger: createLogger({ level: 'silent' }) })
      : undefined;
  try {
    await redis?.ready();
    const sessions: Sessions =
      redis === undefined
        ? new CookieSessions(options, {
            // The minting side keeps nothing: only the server's caches count.
            cache: new ExpiringLru<CachedSession>({ maxEntries: 0, now: Date.now }),
          })
        : new ServerSessions(options, {
            serverSessions: createAppKeyspaces(redis, {
              app: app.name,
              sessionMaxAge: app.session.maxAge,
              loginTimeout: app.session.loginTimeout,
              refreshLockTtl: app.refresh.lockTtl,
              refreshResultTtl: app.refresh.resultTtl,
            }),
          });
    const expiresAt = Date.now() + 3_600_000;
    const cookies: string[] = [];
    for (let i = 0; i < count; i++) {
      const data = opaqueTokenSession(expiresAt);
      const sub = mintedUser(i);
      const { setCookie } = await sessions.create(
        { ...data, sub, claims: { ...data.claims, sub, preferred_username: sub } },
        new Map(),
        true,
      );
      cookies.push([...jarFrom(setCookie)].map(([name, value]) => `${name}=${value}`).join('; '));
    }
    return cookies;
  } finally {
    await redis?.close();
  }
}
