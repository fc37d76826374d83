/** Provider profiles (`oidc.provider`): the defaults each one sets on an app, applied before the schema's own defaults. */
import { isRecord } from '../is-record.ts';

/** The providers with a profile; `generic` changes nothing. */
export const PROVIDER_PROFILES = [
  'generic',
  'keycloak',
  'entra',
  'google',
  'okta',
  'auth0',
  'cognito',
  'gitlab',
] as const;

export type ProviderProfile = (typeof PROVIDER_PROFILES)[number];

/** Scopes for providers that refuse or ignore `offline_access` and issue refresh tokens otherwise. */
const scopesWithoutOfflineAccess = ['openid', 'profile', 'email'];

function section(app: Record<string, unknown>, name: string): Record<string, unknown> {
  const value = app[name];
  return isRecord(value) ? { ...value } : {};
}

/** `record` with `key` set to `value` unless the operator set it (or set the section to a non-mapping). */
function withDefault(
  app: Record<string, unknown>,
  sectionName: string,
  key: string,
  value: unknown,
): Record<string, unknown> {
  const current = app[sectionName];
  if (current !== undefined && !isRecord(current)) return app;
  const fields = section(app, sectionName);
  if (Object.hasOwn(fields, key)) return app;
  return { ...app, [sectionName]: { ...fields, [key]: value } };
}

/** `oidc.extraAuthParams` with each of `params` added unless the operator set that parameter. */
function withAuthParams(
  app: Record<string, unknown>,
  params: Readonly<Record<string, string>>,
): Record<string, unknown> {
  const oidc = section(app, 'oidc');
  const current = oidc['extraAuthParams'];
  if (current !== undefined && !isRecord(current)) return app;
  const merged: Record<string, unknown> = { ...params, ...(current ?? {}) };
  return { ...app, oidc: { ...oidc, extraAuthParams: merged } };
}

/**
 * `rawApp` (one app as written, `defaults` merged in) with the defaults of its `oidc.provider`
 * filled in where the operator set nothing; anything else is left to the schema, which reports
 * an unknown profile. The table in docs/providers.md says what each profile changes and why.
 */
export function applyProviderProfile(rawApp: unknown): unknown {
  if (!isRecord(rawApp) || !isRecord(rawApp['oidc'])) return rawApp;
  const profile = rawApp['oidc']['provider'];
  let app: Record<string, unknown> = rawApp;
  switch (profile) {
    case 'keycloak':
      // `offline_access` makes Keycloak issue an offline token, which outlives the SSO session
      // and its logout; a plain refresh token comes without it. Realm and client roles are read
      // by the default `rolesClaims` and the client's `resource_access.<client>.roles`.
      app = withDefault(app, 'oidc', 'scopes', scopesWithoutOfflineAccess);
      break;
    case 'google':
      // Google issues a refresh token only for `access_type=offline`, and again after the first
      // consent only with `prompt=consent`; `offline_access` is not a Google scope.
      app = withDefault(app, 'oidc', 'scopes', scopesWithoutOfflineAccess);
      app = withAuthParams(app, { access_type: 'offline', prompt: 'consent' });
      break;
    case 'gitlab':
      // GitLab knows no `offline_access` scope (refresh tokens come anyway); the ID token names
      // the user's direct groups in `groups_direct`.
      app = withDefault(app, 'oidc', 'scopes', scopesWithoutOfflineAccess);
      app = withDefault(app, 'authorization', 'groupsClaim', 'groups_direct');
      break;
    case 'auth0': {
      // Without `audience` Auth0 issues an opaque access token no API can verify.
      const bearer = rawApp['bearer'];
      const audiences = isRecord(bearer) ? bearer['audiences'] : undefined;
      const audience = Array.isArray(audiences) ? (audiences as unknown[])[0] : undefined;
      if (typeof audience === 'string' && audience !== '') {
        app = withAuthParams(app, { audience });
      }
      break;
    }
    default:
      break;
  }
  return app;
}
