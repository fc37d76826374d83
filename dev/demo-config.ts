/** The authorization server's configuration for the demo: one app in front of the local provider. */
import { randomBytes } from 'node:crypto';

import { sessionSecretProblem } from '../src/config/secret-strength.ts';

/** The demo's one app; the gateway names it in `context_extensions` (`app=demo`). */
export const DEMO_APP = 'demo';

/** Public page the provider returns the browser to after logout. */
export const SIGNED_OUT_PATH = '/signed-out';

export interface DemoConfigInput {
  /** Loopback address the server's listeners bind to (free ports). */
  readonly host: string;
  readonly issuer: string;
  readonly clientSecret: string;
  /** The gateway's origin, `http://127.0.0.1:8080`. */
  readonly gatewayUrl: string;
  /** Default `warn`, so the console shows the demo's own lines. */
  readonly logLevel?: string;
}

/**
 * A session secret for this run only: sessions end with the demo. Drawn again in the rare case
 * (under one in ten million) that the draw contains a word the secret check refuses.
 */
export function generateSessionSecret(): string {
  for (;;) {
    const secret = randomBytes(32).toString('base64url');
    if (sessionSecretProblem(secret) === undefined) return secret;
  }
}

/**
 * The config document, loaded through the normal loader so the demo runs with exactly the
 * defaults a deployment gets. The memory store, and cookie `Secure` left unset: it is off by
 * itself for plain http on loopback.
 */
export function demoConfigDocument(input: DemoConfigInput): Record<string, unknown> {
  const bind = `${input.host.includes(':') ? `[${input.host}]` : input.host}:0`;
  return {
    listen: { grpc: bind, http: bind, admin: bind },
    log: { level: input.logLevel ?? 'warn' },
    store: { type: 'memory' },
    // One replica and no load balancer to take it out of rotation: stop at once.
    shutdown: { drainDelay: '0s' },
    // The provider runs in this same process, and a laptop may be busy: a sign-in's code
    // exchange gets a second rather than the 100ms a deployment's Checks get.
    request: { budget: '1s' },
    apps: [
      {
        name: DEMO_APP,
        oidc: {
          issuer: input.issuer,
          clientId: DEMO_APP,
          clientSecret: input.clientSecret,
          postLogoutRedirectUri: `${input.gatewayUrl}${SIGNED_OUT_PATH}`,
        },
        session: { secrets: [generateSessionSecret()] },
        publicPaths: [{ exact: SIGNED_OUT_PATH }],
      },
    ],
  };
}
