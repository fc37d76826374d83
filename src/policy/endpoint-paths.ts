/** The app's own endpoints (callback, logout, provider logout): matched on the exact raw path. */
import type { OidcConfig } from '../config/schema.ts';
import type { RequestPath } from './request-path.ts';

export type Endpoint = 'callback' | 'logout' | 'backchannel_logout' | 'frontchannel_logout';

/**
 * An endpoint is named by its exact raw path only: these requests are answered here and never
 * reach an upstream, so no other reading matters, and a path that merely reads as the callback
 * (`/oauth2/./callback`, `/oauth2/callback;x`) is an ordinary request, checked like any other.
 */
export class EndpointPaths {
  readonly #byPath: ReadonlyMap<string, Endpoint>;

  constructor(
    config: Partial<
      Pick<
        OidcConfig,
        'callbackPath' | 'logoutPath' | 'backchannelLogoutPath' | 'frontchannelLogoutPath'
      >
    >,
  ) {
    const byPath = new Map<string, Endpoint>();
    const add = (path: string | undefined, endpoint: Endpoint): void => {
      if (path !== undefined && !byPath.has(path)) byPath.set(path, endpoint);
    };
    add(config.callbackPath, 'callback');
    add(config.logoutPath, 'logout');
    add(config.backchannelLogoutPath, 'backchannel_logout');
    add(config.frontchannelLogoutPath, 'frontchannel_logout');
    this.#byPath = byPath;
  }

  /** True when the raw path is exactly this endpoint's. */
  is(endpoint: Endpoint, path: RequestPath): boolean {
    return this.#byPath.get(path.raw) === endpoint;
  }
}
