/** What an app's sessions are bound to, read from the configuration. */
import type { AppConfig, Config } from '../config/schema.ts';
import type { SessionBinding } from './session-keys.ts';

/**
 * The binding of `app`'s sessions in `config`: the deployment label, the store's key prefix,
 * and the app's name, issuer and client id. A change to any of them ends the app's sessions
 * (one login again), which is the point: a session proves a login at this provider, for this
 * client, in this deployment — nothing else.
 */
export function sessionBindingFor(
  config: Pick<Config, 'deployment' | 'store'>,
  app: Pick<AppConfig, 'name' | 'oidc'>,
): SessionBinding {
  return {
    deployment: config.deployment,
    keyPrefix: config.store.redis.keyPrefix,
    app: app.name,
    issuer: app.oidc.issuer,
    // An API-only app has no client, and no sessions to bind.
    clientId: app.oidc.clientId ?? '',
  };
}
