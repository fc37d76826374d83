/**
 * Glewlwyd (Debian's `glewlwyd` package, a C OpenID Provider) started by a test: its own sqlite
 * database and config in a temp dir, a free loopback port, an OIDC plugin instance, clients and
 * users created through its admin REST API, and a scripted browser for its login and logout
 * pages (which are a JavaScript app: the script makes the same API calls the app makes).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair } from 'jose';
import { CookieJar } from './scripted-login.ts';
import { freePort, waitFor } from './redis-servers.ts';

const run = promisify(execFile);

const BINARY = '/usr/bin/glewlwyd';
/** The package's own schema and seed data (tables, the `admin` user, the database backends). */
const INIT_SQL = '/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3';
const MODULES = '/usr/lib/glewlwyd';
/** The seed data's administrator. */
const ADMIN = { username: 'admin', password: 'password' };
/** Name of the OIDC plugin instance: its endpoints live under `/api/<name>/`. */
const PLUGIN = 'oidc';

async function memoryBackedTmp(): Promise<string> {
  try {
    await access('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

function missingPackage(what: string): Error {
  return new Error(
    `${what} is missing; these tests run a real Glewlwyd OpenID Provider: apt-get install -y glewlwyd`,
  );
}

export interface GlewlwydUser {
  readonly username: string;
  readonly password: string;
  readonly name?: string;
  readonly email?: string;
  /** Served as the `groups` claim (ID token and userinfo). */
  readonly groups?: readonly string[];
}

export interface GlewlwydClient {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUris?: readonly string[];
  readonly postLogoutRedirectUris?: readonly string[];
  /** Where Glewlwyd POSTs logout tokens (Back-Channel Logout, with `sid`). */
  readonly backchannelLogoutUri?: string;
  /** Glewlwyd's `authorization_type`: `code`, `refresh_token`, `client_credentials`, … */
  readonly grantTypes: readonly string[];
  /** Scopes the client may get by client credentials. */
  readonly scopes?: readonly string[];
}

export interface GlewlwydOptions {
  readonly users?: readonly GlewlwydUser[];
  readonly clients?: readonly GlewlwydClient[];
  /** Default 3600. */
  readonly accessTokenSeconds?: number;
  /**
   * Resource indicators (RFC 8707) a client-credentials token may ask for, per scope: the
   * token's `aud` is then the resource. Without one, Glewlwyd sets `aud` to the scope list.
   */
  readonly resources?: Readonly<Record<string, readonly string[]>>;
}

export interface GlewlwydLoginResult {
  /** The redirect to the client's redirect URI, with `code` and `state`; not requested. */
  readonly callbackUrl: URL;
}

export interface GlewlwydLogoutResult {
  /** Where Glewlwyd's logout page sends the browser: the post-logout redirect URI with `state`. */
  readonly finalUrl: URL;
  /** The provider session that ended (the ID tokens' `sid`). */
  readonly sid: string;
}

export interface Glewlwyd {
  /** `http://127.0.0.1:<port>/api/oidc`: the discovery document is under it. */
  readonly issuer: string;
  readonly origin: string;
  addClient(client: GlewlwydClient): Promise<void>;
  addUser(user: GlewlwydUser): Promise<void>;
  /**
   * Follows `authorizationUrl` as Glewlwyd's login app would: the redirect to its login page,
   * the password, the consent to the requested scopes, and back to `/auth`. With a provider
   * session in `jar` already, only what is still missing.
   */
  login(
    authorizationUrl: URL,
    user: { readonly username: string; readonly password: string },
    jar: CookieJar,
  ): Promise<GlewlwydLoginResult>;
  /** Follows the end-session URL as Glewlwyd's logout page would ("log out of all clients"). */
  logout(endSessionUrl: URL, jar: CookieJar): Promise<GlewlwydLogoutResult>;
  /**
   * Ends provider session `sid` as the user's logout page does, without any client asking:
   * Glewlwyd disables its tokens and sends each client its back-channel logout token.
   */
  endSession(sid: string, jar: CookieJar): Promise<void>;
  /** How many refresh tokens the signed-in user of `jar` was issued, and how many still work. */
  refreshTokens(jar: CookieJar): Promise<{ total: number; enabled: number }>;
  /** Revokes every refresh token the signed-in user of `jar` holds (as the user's profile page). */
  revokeRefreshTokens(jar: CookieJar): Promise<number>;
  /** Kills it and removes its directory. */
  close(): Promise<void>;
}

function configFile(port: number, database: string): string {
  // libconfig syntax. `use_secure_connection` must be absent: Glewlwyd 2.7 refuses `false`
  // without certificate paths.
  return `port=${port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:${port}"
login_url="login.html"
api_prefix="api"
log_mode="console"
log_level="ERROR"
cookie_secure=0
cookie_same_site="empty"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=false
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="${MODULES}/user"
client_module_path="${MODULES}/client"
user_auth_scheme_module_path="${MODULES}/scheme"
plugin_module_path="${MODULES}/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3"; path = "${database}"; };
`;
}

/** A JSON call to Glewlwyd's REST API with the cookies of `jar`; fails on an unexpected status. */
async function api(
  origin: string,
  jar: CookieJar,
  method: string,
  path: string,
  body?: unknown,
  expected: readonly number[] = [200],
): Promise<{ status: number; text: string; location: string | null }> {
  const url = new URL(`${origin}/api${path}`);
  const headers: Record<string, string> = {};
  const cookie = jar.headerFor(url);
  if (cookie !== undefined) headers['cookie'] = cookie;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    redirect: 'manual',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  jar.store(url, response);
  const text = await response.text();
  if (!expected.includes(response.status)) {
    throw new Error(
      `glewlwyd ${method} ${url.pathname} answered ${response.status}: ${text.slice(0, 300)}`,
    );
  }
  return { status: response.status, text, location: response.headers.get('location') };
}

async function getFollowingNothing(url: URL, jar: CookieJar): Promise<Response> {
  const headers: Record<string, string> = { accept: 'text/html' };
  const cookie = jar.headerFor(url);
  if (cookie !== undefined) headers['cookie'] = cookie;
  const response = await fetch(url, { headers, redirect: 'manual' });
  jar.store(url, response);
  await response.arrayBuffer();
  return response;
}

/** The OIDC plugin instance: RS256 keys, rotating one-time refresh tokens, logout channels. */
async function pluginParameters(
  issuer: string,
  options: GlewlwydOptions,
): Promise<Record<string, unknown>> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'glewlwyd-rs256', alg: 'RS256' };
  return {
    iss: issuer,
    'jwks-private': JSON.stringify({ keys: [jwk] }),
    'default-kid': jwk.kid,
    'access-token-duration': options.accessTokenSeconds ?? 3600,
    'refresh-token-duration': 1_209_600,
    'code-duration': 600,
    'refresh-token-rolling': true,
    // Rotation: each refresh answers a new refresh token and disables the one spent; spending
    // one twice disables the whole chain.
    'refresh-token-one-use': 'always',
    'allow-non-oidc': true,
    'auth-type-code-enabled': true,
    'auth-type-code-revoke-replayed': true,
    'auth-type-client-enabled': true,
    'auth-type-refresh-enabled': true,
    'pkce-allowed': true,
    'subject-type': 'public',
    'name-claim': 'mandatory',
    'email-claim': 'mandatory',
    'scope-claim': 'no',
    claims: [{ name: 'groups', 'user-property': 'groups', type: 'string', mandatory: true }],
    'introspection-revocation-allowed': true,
    'introspection-revocation-allow-target-client': true,
    'session-management-allowed': true,
    'session-cookie-name': 'GLEWLWYD2_OIDC_SID',
    'session-cookie-expiration': 3600,
    'back-channel-logout-allowed': true,
    // Without it the logout page's first call (the session's front-channel clients) answers
    // 400 and the page never ends the session nor returns to the client.
    'front-channel-logout-allowed': true,
    ...(options.resources === undefined
      ? {}
      : { 'resource-allowed': true, 'resource-scope': options.resources }),
  };
}

/** Starts Glewlwyd on a free loopback port with one OIDC plugin instance, `users` and `clients`. */
export async function startGlewlwyd(options: GlewlwydOptions = {}): Promise<Glewlwyd> {
  try {
    await access(BINARY);
    await access(INIT_SQL);
  } catch {
    throw missingPackage(`${BINARY} or ${INIT_SQL}`);
  }
  // Glewlwyd syncs sqlite on every write: on tmpfs when there is one, setting it up takes a
  // fraction of the time.
  const dir = await mkdtemp(join(await memoryBackedTmp(), 'glewlwyd-'));
  const database = join(dir, 'glewlwyd.db');
  try {
    // One transaction: statement by statement, sqlite syncs the disk ~100 times (seconds).
    await run('sqlite3', ['-cmd', 'BEGIN', database, `.read ${INIT_SQL}`, 'COMMIT'], {
      timeout: 30_000,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missingPackage('sqlite3');
    throw error;
  }
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const issuer = `${origin}/api/${PLUGIN}`;
  await writeFile(join(dir, 'glewlwyd.conf'), configFile(port, database));

  let log = '';
  let child: ChildProcess | undefined = spawn(BINARY, ['-c', join(dir, 'glewlwyd.conf')], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onData = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((resolve) => child?.once('exit', () => resolve()));
  // A safety net for a test that dies without reaching its cleanup: never leave it behind.
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  async function close(): Promise<void> {
    const current = child;
    child = undefined;
    if (current !== undefined && current.exitCode === null && current.signalCode === null) {
      current.kill('SIGKILL');
      await exited;
    }
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  }

  const admin = new CookieJar();
  async function addClient(client: GlewlwydClient): Promise<void> {
    await api(origin, admin, 'POST', '/client/', {
      client_id: client.clientId,
      name: client.clientId,
      enabled: true,
      confidential: true,
      client_secret: client.clientSecret,
      redirect_uri: client.redirectUris ?? [],
      post_logout_redirect_uris: client.postLogoutRedirectUris ?? [],
      authorization_type: client.grantTypes,
      token_endpoint_auth_method: ['client_secret_basic', 'client_secret_post'],
      scope: client.scopes ?? [],
      ...(client.backchannelLogoutUri === undefined
        ? {}
        : {
            backchannel_logout_uri: client.backchannelLogoutUri,
            backchannel_logout_session_required: 'true',
          }),
    });
  }
  async function addUser(user: GlewlwydUser): Promise<void> {
    await api(origin, admin, 'POST', '/user/', {
      username: user.username,
      password: user.password,
      name: user.name ?? '',
      email: user.email ?? '',
      enabled: true,
      scope: ['openid', 'profile', 'email', 'offline_access'],
      groups: user.groups ?? [],
    });
  }

  try {
    await waitFor(
      `glewlwyd on port ${port}`,
      async () => {
        if (child?.exitCode !== null) throw new Error('exited');
        await fetch(`${origin}/api/`);
        return true;
      },
      10_000,
    ).catch((error: unknown) => {
      throw new Error(`glewlwyd did not start: ${String(error)}\n${log}`);
    });
    await api(origin, admin, 'POST', '/auth/', ADMIN);
    // Let the database backends store what the tests give users and clients: groups, and the
    // post-logout redirect URIs end_session checks.
    for (const [kind, property] of [
      ['user', 'groups'],
      ['client', 'post_logout_redirect_uris'],
    ] as const) {
      const module = JSON.parse(
        (await api(origin, admin, 'GET', `/mod/${kind}/database`)).text,
      ) as { parameters: { 'data-format': Record<string, unknown> } };
      module.parameters['data-format'][property] = {
        multiple: true,
        read: true,
        write: true,
        'profile-read': true,
        'profile-write': false,
      };
      await api(origin, admin, 'PUT', `/mod/${kind}/database`, module);
      await api(origin, admin, 'PUT', `/mod/${kind}/database/reset`);
    }
    const scopes = new Set(['profile', 'email', 'offline_access']);
    for (const scope of Object.keys(options.resources ?? {})) scopes.add(scope);
    for (const scope of scopes) {
      await api(origin, admin, 'POST', '/scope/', {
        name: scope,
        display_name: scope,
        description: scope,
        password_required: true,
        password_max_age: 0,
        scheme: {},
      });
    }
    await api(origin, admin, 'POST', '/mod/plugin/', {
      module: 'oidc',
      name: PLUGIN,
      display_name: PLUGIN,
      enabled: true,
      parameters: await pluginParameters(issuer, options),
    });
    for (const user of options.users ?? []) await addUser(user);
    for (const client of options.clients ?? []) await addClient(client);
  } catch (error) {
    await close();
    throw error;
  }

  async function refreshTokenList(
    jar: CookieJar,
  ): Promise<{ token_hash: string; enabled: boolean }[]> {
    const { text } = await api(origin, jar, 'GET', `/${PLUGIN}/token/`);
    return JSON.parse(text) as { token_hash: string; enabled: boolean }[];
  }

  return {
    issuer,
    origin,
    addClient,
    addUser,
    async login(authorizationUrl, user, jar) {
      const redirectUri = authorizationUrl.searchParams.get('redirect_uri');
      if (redirectUri === null) throw new Error('authorization URL has no redirect_uri');
      const toClient = (location: string | null): URL | undefined => {
        if (location === null) return undefined;
        const target = new URL(location, authorizationUrl);
        return target.href.startsWith(`${redirectUri}?`) ? target : undefined;
      };
      const first = await getFollowingNothing(authorizationUrl, jar);
      const direct = toClient(first.headers.get('location'));
      if (direct !== undefined) return { callbackUrl: direct };
      const loginPage = new URL(first.headers.get('location') ?? '', origin);
      const callback = loginPage.searchParams.get('callback_url');
      if (first.status !== 302 || loginPage.pathname !== '/login.html' || callback === null) {
        throw new Error(`glewlwyd /auth answered ${first.status} to ${loginPage.href}`);
      }
      const clientId = loginPage.searchParams.get('client_id') ?? '';
      await api(origin, jar, 'POST', '/auth/', user);
      await api(origin, jar, 'PUT', `/auth/grant/${encodeURIComponent(clientId)}`, {
        scope: loginPage.searchParams.get('scope') ?? '',
      });
      // What the login app's "Continue" button does.
      const resumed = await getFollowingNothing(
        new URL(`${callback}${callback.includes('?') ? '&' : '?'}g_continue`),
        jar,
      );
      const callbackUrl = toClient(resumed.headers.get('location'));
      if (callbackUrl === undefined) {
        throw new Error(
          `glewlwyd did not return to the client: ${resumed.status} ${resumed.headers.get('location') ?? ''}`,
        );
      }
      return { callbackUrl };
    },
    async logout(endSessionUrl, jar) {
      const first = await getFollowingNothing(endSessionUrl, jar);
      const page = new URL(first.headers.get('location') ?? '', origin);
      const sid = page.searchParams.get('sid');
      const clientId = page.searchParams.get('client_id');
      const callback = page.searchParams.get('callback_url');
      if (page.searchParams.get('prompt') !== 'end_session' || sid === null || clientId === null) {
        throw new Error(`glewlwyd end_session answered ${first.status} to ${page.href}`);
      }
      // What the logout page does on "log out of all clients": list the session's clients, end
      // the session (disabling its tokens, sending the logout tokens), close the login session,
      // then go to the post-logout redirect URI.
      await api(origin, jar, 'GET', `/${PLUGIN}/session/${sid}/${clientId}`);
      await api(origin, jar, 'DELETE', `/${PLUGIN}/session/${sid}`);
      await api(origin, jar, 'DELETE', '/auth/');
      if (callback === null) throw new Error(`glewlwyd end_session gave no callback: ${page.href}`);
      return { finalUrl: new URL(callback), sid };
    },
    async endSession(sid, jar) {
      await api(origin, jar, 'DELETE', `/${PLUGIN}/session/${encodeURIComponent(sid)}`);
    },
    async refreshTokens(jar) {
      const list = await refreshTokenList(jar);
      return { total: list.length, enabled: list.filter((token) => token.enabled).length };
    },
    async revokeRefreshTokens(jar) {
      const enabled = (await refreshTokenList(jar)).filter((token) => token.enabled);
      for (const token of enabled) {
        await api(
          origin,
          jar,
          'DELETE',
          `/${PLUGIN}/token/${encodeURIComponent(token.token_hash)}`,
        );
      }
      return enabled.length;
    },
    close,
  };
}
