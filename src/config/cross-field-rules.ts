/** Rules that span several configuration keys, checked after each part passed the schema. */

import { createPrivateKey, type JsonWebKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';

import { formatPath, type PathSegment } from './config-path.ts';
import { issuerKey } from './issuer-key.ts';
import type { LocatedProblem } from './schema-problems.ts';
import type { AppConfig, Config } from './schema.ts';
import type { ConfigProblem } from '../errors.ts';
import { parseHostPort } from '../host-port.ts';

type RootConfig = Omit<Config, 'apps'>;

const ENDPOINT_PATHS = [
  'callbackPath',
  'logoutPath',
  'backchannelLogoutPath',
  'frontchannelLogoutPath',
] as const;

/** Keys that only a browser login uses: set on an API-only app, they are a mistake. */
const LOGIN_ONLY_KEYS = [
  'clientSecret',
  'privateKey',
  'postLogoutRedirectUri',
  'backchannelLogoutPath',
  'frontchannelLogoutPath',
] as const;

/** Rules within one app; paths are relative to the app. */
export function checkAppRules(app: AppConfig): LocatedProblem[] {
  const problems: LocatedProblem[] = [];
  const problem = (path: readonly PathSegment[], message: string) =>
    problems.push({ path, message });
  const { oidc, session, bearer } = app;

  if (!app.browserLogin) {
    // An API-only app: bearer tokens are all it accepts, so nothing of a login may be asked of it.
    if (!bearer.enabled) {
      problem(
        ['oidc', 'clientId'],
        'is required: an app without a client has no browser login, so it must accept bearer tokens (set bearer.enabled and bearer.audiences), or give the client id of its login',
      );
    }
    for (const key of LOGIN_ONLY_KEYS) {
      if (oidc[key] !== undefined) {
        problem(['oidc', key], 'applies only to an app with browser login (oidc.clientId)');
      }
    }
    if (bearer.enabled && bearer.audiences.length === 0) {
      problem(['bearer', 'audiences'], 'must list at least one audience when bearer is enabled');
    }
    return problems;
  }
  if (session.secrets.length === 0) {
    problem(['session', 'secrets'], 'must have at least one secret');
  }

  if (
    (oidc.clientAuth === 'client_secret_basic' || oidc.clientAuth === 'client_secret_post') &&
    oidc.clientSecret === undefined
  ) {
    problem(
      ['oidc', 'clientSecret'],
      `is required when clientAuth is ${oidc.clientAuth} (or give clientSecretFile)`,
    );
  }
  if (oidc.clientAuth === 'private_key_jwt') {
    if (oidc.privateKey === undefined) {
      problem(
        ['oidc', 'privateKey'],
        'is required when clientAuth is private_key_jwt (or give privateKeyFile)',
      );
    } else if (!isPrivateKey(oidc.privateKey)) {
      problem(['oidc', 'privateKey'], 'must be a PEM private key or a private JWK as JSON');
    }
  }

  const assertion = app.upstreamAssertion;
  if (assertion !== undefined) {
    const taken = [
      ...Object.keys(app.upstreamHeaders),
      ...(app.passAccessToken ? ['authorization'] : []),
      ...(app.passIdToken ? ['x-id-token'] : []),
    ];
    if (taken.includes(assertion.header)) {
      problem(['upstreamAssertion', 'header'], 'is already an identity header of this app');
    }
  }

  // A path's acr list adds to the app's: with no value in common, no login could ever pass.
  const appAcrs = app.authorization.acrValues;
  app.authorization.paths.forEach((rule, index) => {
    if (appAcrs.length === 0 || rule.acrValues.length === 0) return;
    if (!rule.acrValues.some((acr) => appAcrs.includes(acr))) {
      problem(
        ['authorization', 'paths', index, 'acrValues'],
        'shares no value with authorization.acrValues: no login could meet both',
      );
    }
  });
  const maxAgeParam = oidc.extraAuthParams['max_age'];
  if (maxAgeParam !== undefined && !/^\d{1,10}$/.test(maxAgeParam)) {
    problem(['oidc', 'extraAuthParams', 'max_age'], 'must be a whole number of seconds');
  }

  // An endpoint that is also public would be let through untouched and never handled.
  const seen = new Map<string, string>();
  for (const key of ENDPOINT_PATHS) {
    const path = oidc[key];
    if (path === undefined) continue;
    const publicIndex = app.publicPaths.findIndex((entry) =>
      'prefix' in entry ? path.startsWith(entry.prefix) : path === entry.exact,
    );
    if (publicIndex !== -1) {
      problem(['oidc', key], `is also a public path (publicPaths[${publicIndex}])`);
    }
    const other = seen.get(path);
    if (other !== undefined) problem(['oidc', key], `is the same path as oidc.${other}`);
    seen.set(path, key);
  }

  if (session.sameSite === 'none' && session.secure === false) {
    problem(
      ['session', 'secure'],
      'cannot be false with sameSite none (browsers drop such cookies)',
    );
  }
  if (session.idleTimeout !== undefined && session.idleTimeout > session.maxAge) {
    problem(['session', 'idleTimeout'], 'must not exceed session.maxAge');
  }

  if (bearer.enabled && bearer.audiences.length === 0) {
    problem(['bearer', 'audiences'], 'must list at least one audience when bearer is enabled');
  }
  if (oidc.tenants.length > 0 && oidc.provider !== 'entra') {
    problem(['oidc', 'tenants'], 'applies only with oidc.provider: entra');
  }
  bearer.issuers.forEach((entry, index) => {
    if (entry.issuer === oidc.issuer) {
      problem(
        ['bearer', 'issuers', index, 'issuer'],
        "is the app's oidc.issuer, which is already the first bearer issuer",
      );
    }
  });
  if (bearer.dpop.required && !bearer.dpop.enabled) {
    problem(['bearer', 'dpop', 'required'], 'needs bearer.dpop.enabled');
  }
  const introspection = bearer.introspection;
  if (introspection?.enabled === true) {
    if (introspection.clientId === undefined) {
      problem(['bearer', 'introspection', 'clientId'], 'is required when introspection is enabled');
    }
    if (introspection.clientSecret === undefined) {
      problem(
        ['bearer', 'introspection', 'clientSecret'],
        'is required when introspection is enabled (or give clientSecretFile)',
      );
    }
  }
  return problems;
}

/** Rules over the top-level keys (everything but `apps`). */
export function checkRootRules(root: RootConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const problem = (path: string, message: string) => problems.push({ path, message });
  const redis = root.store.redis;
  const modes: string[] = [];
  if (redis.url !== undefined) modes.push('url');
  if (redis.sentinels !== undefined || redis.name !== undefined) modes.push('sentinels');
  if (redis.cluster !== undefined) modes.push('cluster');
  for (const mode of modes.slice(1)) {
    problem(
      `store.redis.${mode}`,
      `cannot be combined with ${modes[0] ?? ''} (give one of url, sentinels with name, cluster)`,
    );
  }
  if (redis.sentinels !== undefined && redis.name === undefined) {
    problem('store.redis.name', 'is required with sentinels');
  }
  if (redis.name !== undefined && redis.sentinels === undefined) {
    problem('store.redis.sentinels', 'is required with name');
  }
  // Credentials of the sentinels themselves mean nothing without sentinels: a misplaced key.
  for (const key of ['sentinelUsername', 'sentinelPassword'] as const) {
    if (redis[key] !== undefined && redis.sentinels === undefined) {
      problem(`store.redis.${key}`, 'is only used with sentinels');
    }
  }
  if (root.store.type === 'redis' && modes.length === 0) {
    problem(
      'store.redis',
      'needs one of url, sentinels with name, or cluster when store.type is redis',
    );
  }
  const listenTls = root.listen.tls;
  if (listenTls !== undefined) {
    const failure = secureContextFailure(listenTls);
    if (failure !== undefined) problem('listen.tls', failure);
  }
  const tls = redis.tls;
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    problem(
      tls.cert === undefined ? 'store.redis.tls.cert' : 'store.redis.tls.key',
      'is required with ' + (tls.cert === undefined ? 'key' : 'cert'),
    );
  }

  const listeners = [
    ['grpc', root.listen.grpc],
    ['http', root.listen.http],
    ['admin', root.listen.admin],
  ] as const;
  listeners.forEach(([name, address], i) => {
    const earlier = listeners.slice(0, i).find(([, other]) => other === address);
    if (earlier !== undefined && parseHostPort(address)?.port !== 0) {
      problem(`listen.${name}`, `is the same address as listen.${earlier[0]}`);
    }
  });
  return problems;
}

/**
 * Rules across apps. Names are taken from the raw documents, so a duplicate is reported even
 * when one of the apps has other problems. An app that matches every request (no hosts, path
 * prefix `/`) may be followed by apps without a `match` of their own — those are chosen through
 * `context_extensions` (Contour, Gloo) — but an app after it with a narrower `match` could never
 * be chosen by that match, which is reported. Apps on one issuer share its provider (one
 * discovery, one JWKS, one set of breakers), so they must agree on its settings.
 */
export function checkAcrossApps(
  rawNames: readonly unknown[],
  apps: readonly (AppConfig | undefined)[],
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const firstByName = new Map<string, number>();
  rawNames.forEach((name, i) => {
    if (typeof name !== 'string') return;
    const first = firstByName.get(name);
    if (first === undefined) firstByName.set(name, i);
    else {
      problems.push({
        path: formatPath(['apps', i, 'name']),
        message: `is the same as apps[${first}].name (app names must be unique)`,
      });
    }
  });

  let catchAll: number | undefined;
  apps.forEach((app, i) => {
    if (app === undefined) return;
    const matchesAll = app.match.hosts.length === 0 && app.match.pathPrefix === '/';
    if (catchAll !== undefined && !matchesAll) {
      problems.push({
        path: formatPath(['apps', i, 'match']),
        message: `is never reached: apps[${catchAll}] matches every request first (move this app before it)`,
      });
    }
    if (matchesAll && catchAll === undefined) catchAll = i;
  });
  problems.push(...checkSharedProviders(apps));
  return problems;
}

/** The `oidc` settings that belong to the provider rather than to one app's client. */
const PROVIDER_SETTINGS = ['tlsInsecureSkipVerify', 'probeInterval'] as const;

function checkSharedProviders(apps: readonly (AppConfig | undefined)[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const firstByIssuer = new Map<string, number>();
  apps.forEach((app, i) => {
    if (app === undefined) return;
    const key = issuerKey(app.oidc.issuer);
    const first = firstByIssuer.get(key);
    if (first === undefined) {
      firstByIssuer.set(key, i);
      return;
    }
    const firstApp = apps[first]!;
    for (const setting of PROVIDER_SETTINGS) {
      if (app.oidc[setting] !== firstApp.oidc[setting]) {
        problems.push({
          path: formatPath(['apps', i, 'oidc', setting]),
          message: `differs from apps[${first}].oidc.${setting}, an app on the same issuer (its provider is shared: set the same value)`,
        });
      }
    }
  });
  return problems;
}

function isPrivateKey(text: string): boolean {
  try {
    const trimmed = text.trim();
    const key = trimmed.startsWith('{')
      ? createPrivateKey({ key: JSON.parse(trimmed) as JsonWebKey, format: 'jwk' })
      : createPrivateKey(trimmed);
    return key.type === 'private';
  } catch {
    return false;
  }
}

/**
 * Why the listeners' certificate, key and client CA do not make a TLS context (the library's
 * reason, which names no key material), or undefined when they do.
 */
function secureContextFailure(tls: {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string | undefined;
}): string | undefined {
  try {
    createSecureContext({
      cert: tls.cert,
      key: tls.key,
      ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa }),
    });
    return undefined;
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'unusable';
    return `cert, key and clientCa do not make a TLS context: ${reason}`;
  }
}
