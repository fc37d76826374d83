/** Typical session contents for the memory and codec measurements: opaque-token and JWT-token IdPs. */
import { randomBytes } from 'node:crypto';
import type { SessionOptions } from '../src/session/sessions.ts';
import type { NewSession } from '../src/session/session.ts';

/** A session secret for measurements only. */
export const benchSecret = 'Lw3Hq8Zr1VnC6tJx0YbK5mSg9PdF2uAeR7oTi4NcBkM';

/** Cookie sessions as a default app config has them. */
export const cookieSessionOptions: SessionOptions = Object.freeze({
  secrets: [benchSecret],
  cookieName: '_eoa_bench',
  binding: {
    deployment: 'default',
    keyPrefix: 'eoa:',
    app: 'bench',
    issuer: 'https://idp.example.com',
    clientId: 'bench',
  },
  maxAge: 86_400_000,
  sameSite: 'lax',
  maxPendingLogins: 5,
  loginTimeout: 600_000,
});

/** A JWT-shaped string of about `length` characters. */
function jwtLike(length: number): string {
  const body = randomBytes(Math.ceil((length * 3) / 4)).toString('base64url');
  return `${body.slice(0, 36)}.${body.slice(36, length - 344)}.${body.slice(0, 342)}`;
}

const claims = {
  sub: '3f1c2a9e-7b4d-4e8a-9c61-0d2b5e8f4a17',
  email: 'alice.example@example.com',
  email_verified: true,
  name: 'Alice Example',
  preferred_username: 'alice',
  groups: ['engineering', 'grafana-admins', 'on-call'],
  roles: ['viewer', 'editor'],
};

/** An IdP issuing opaque access and refresh tokens and a JWT ID token (node-oidc-provider's default). */
export function opaqueTokenSession(expiresAt: number): NewSession {
  return {
    sub: claims.sub,
    sid: randomBytes(16).toString('base64url'),
    claims,
    tokens: {
      accessToken: randomBytes(32).toString('base64url'),
      refreshToken: randomBytes(32).toString('base64url'),
      idToken: jwtLike(900),
      expiresAt,
    },
  };
}

/** An IdP issuing JWT access, refresh and ID tokens (Keycloak-like). */
export function jwtTokenSession(expiresAt: number): NewSession {
  return {
    ...opaqueTokenSession(expiresAt),
    tokens: {
      accessToken: jwtLike(1_100),
      refreshToken: jwtLike(650),
      idToken: jwtLike(950),
      expiresAt,
    },
  };
}

/** The `set-cookie` lines applied to an empty jar: name → value, as the next request sends them. */
export function jarFrom(lines: readonly string[]): Map<string, string> {
  const jar = new Map<string, string>();
  for (const line of lines) {
    const pair = line.slice(0, line.indexOf(';') === -1 ? line.length : line.indexOf(';'));
    const eq = pair.indexOf('=');
    if (!/;\s*Max-Age=0(;|$)/i.test(line)) jar.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return jar;
}
