/**
 * Attack class: identity-header forgery. A client sends its own copy of a header the upstream
 * trusts (`x-auth-request-*`, the app's templates), in any spelling the upstream folds into it
 * (`_` for `-`, any case), on public and private paths, in both Envoy modes. Expected: the
 * forged value never reaches the upstream, as Envoy applies the server's answer (gRPC
 * `ok_response`; HTTP mode with the header lists `envoy/envoy-http.yaml` ships).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { bothModes, modeNames, type EnvoyMode } from '../support/both-modes.ts';
import { AppBrowser } from '../support/browser.ts';
import type { Outcome } from '../support/envoy-client.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';

const origin = 'https://grafana.example.com';
const clientSecret = 'grafana-client-secret-long-enough';
const forged = 'FORGED-Admin';

/** The app's identity headers: the defaults and the Grafana role of `envoy/authz-config.yaml`. */
const identityHeaders = [
  'x-auth-request-user',
  'x-auth-request-email',
  'x-auth-request-groups',
  'x-auth-request-preferred-username',
  'x-auth-request-role',
];
const identity = new Set(identityHeaders);

/**
 * What the upstream may see for the signed-in user, who has no `email` and no `grafana_role`
 * claim (so those two headers render empty); on a public path, nothing.
 */
const signedIn: Readonly<Record<string, string>> = {
  'x-auth-request-user': 'mallory',
  'x-auth-request-groups': 'users',
  'x-auth-request-preferred-username': 'mallory',
};

interface Row {
  readonly attack: string;
  readonly path: string;
  readonly session: boolean;
  readonly headers: readonly (readonly [string, string])[];
}

const every = (spell: (name: string) => string): [string, string][] =>
  identityHeaders.map((name) => [spell(name), forged]);
const underscored = (name: string): string => name.replaceAll('-', '_');

const rows: readonly Row[] = [
  {
    attack: 'each identity header, exact case, private path',
    path: '/d/home',
    session: true,
    headers: every((name) => name),
  },
  {
    attack: 'each identity header, upper case, private path',
    path: '/d/home',
    session: true,
    headers: every((name) => name.toUpperCase()),
  },
  {
    attack: 'each identity header, underscores (x_auth_request_user), private path',
    path: '/d/home',
    session: true,
    headers: every(underscored),
  },
  {
    attack: 'each identity header, mixed separators and case (X-Auth_Request-User)',
    path: '/d/home',
    session: true,
    headers: every((name) =>
      name.replace('-auth-', '-Auth_').replace(/^x/, 'X').replace('-request', '_Request'),
    ),
  },
  {
    attack: 'each identity header, exact case, public path, no session',
    path: '/public/logo.png',
    session: false,
    headers: every((name) => name),
  },
  {
    attack: 'each identity header, underscores, public path, no session',
    path: '/public/logo.png',
    session: false,
    headers: every(underscored),
  },
  {
    attack: 'each identity header, upper case, public path, signed in',
    path: '/public/logo.png',
    session: true,
    headers: every((name) => name.toUpperCase()),
  },
  {
    attack: 'a header whose claim is missing (no email), private path',
    path: '/d/home',
    session: true,
    headers: [['x-auth-request-email', 'ceo@example.com']],
  },
  {
    attack: 'a template header whose claim is missing: the Grafana role',
    path: '/api/admin/users',
    session: true,
    headers: [['x-auth-request-role', 'Admin']],
  },
  {
    attack: 'the Grafana role, underscores',
    path: '/api/admin/users',
    session: true,
    headers: [['x_auth_request_role', 'Admin']],
  },
  {
    attack: 'duplicated header lines (role twice, user twice)',
    path: '/d/home',
    session: true,
    headers: [
      ['x-auth-request-role', forged],
      ['x-auth-request-role', 'Admin'],
      ['x-auth-request-user', forged],
      ['X-Auth-Request-User', 'root'],
    ],
  },
  {
    attack: 'the same header in both spellings',
    path: '/d/home',
    session: true,
    headers: [
      ['x-auth-request-role', forged],
      ['x_auth_request_role', forged],
      ['x-auth-request-user', forged],
      ['x_auth_request_user', forged],
    ],
  },
];

/**
 * Every upstream header that an upstream would read as an identity header. The fold is spelled
 * out here, not imported from the server, so that a server folding wrongly cannot hide a forged
 * header from this check (nginx, Django, Rails read `_` as `-` and ignore case).
 */
function identityAtUpstream(outcome: Outcome): Map<string, string> {
  const seen = new Map<string, string>();
  if (outcome.kind !== 'allow') return seen;
  for (const [name, value] of outcome.upstream.headers) {
    if (identity.has(name.toLowerCase().replaceAll('_', '-'))) seen.set(name, value);
  }
  return seen;
}

describe('identity-header forgery', () => {
  let provider: TestProvider;
  let server: TestServer;
  let modes: EnvoyMode[];
  const browsers = new Map<string, AppBrowser>();

  before(async () => {
    ({ provider, server } = await startAppStack({
      name: 'grafana',
      clientSecret,
      provider: { users: [{ sub: 'mallory', preferredUsername: 'mallory', groups: ['users'] }] },
      oidc: {
        scopes: ['openid', 'profile', 'email'],
        frontchannelLogoutPath: '/oauth2/frontchannel-logout',
      },
      app: {
        publicPaths: [{ prefix: '/public/' }],
        upstreamHeaders: { 'x-auth-request-role': '{{ claims.grafana_role }}' },
      },
    }));
    modes = bothModes(server);
    for (const mode of modes) {
      const browser = new AppBrowser(mode.envoy);
      await browser.login(`${origin}/`, 'mallory');
      browsers.set(mode.name, browser);
    }
  });

  after(async () => {
    for (const mode of modes) mode.close();
    await server.close();
    await provider.close();
  });

  for (const row of rows) {
    for (const modeName of modeNames) {
      it(`${modeName}: ${row.attack}`, async () => {
        const mode = modes.find((candidate) => candidate.name === modeName)!;
        const browser = row.session ? browsers.get(modeName)! : new AppBrowser(mode.envoy);
        const outcome = await browser.request(`${origin}${row.path}`, {
          headers: row.headers,
          navigate: false,
        });
        assert.equal(outcome.kind, 'allow', 'the request itself is let through');
        // A public path is decided before the session: no identity at all.
        const isPublic = row.path.startsWith('/public/');
        const expected = new Map(row.session && !isPublic ? Object.entries(signedIn) : []);
        assert.deepEqual(identityAtUpstream(outcome), expected);
      });
    }
  }

  // A provider logout is answered by the server itself, as a local reply with status 200 in
  // gRPC mode. In HTTP mode Envoy reads a 200 as an allow: the request went on to the upstream
  // with the client's forged identity headers and nothing removed. Anyone can send it: the
  // issuer is public and any `sid` is answered.
  for (const modeName of modeNames) {
    it(`${modeName}: a front-channel logout with forged headers is answered, never forwarded`, async () => {
      const mode = modes.find((candidate) => candidate.name === modeName)!;
      const outcome = await new AppBrowser(mode.envoy).request(
        `${origin}/oauth2/frontchannel-logout?iss=${encodeURIComponent(provider.issuer)}&sid=x`,
        { headers: every((name) => name), navigate: false },
      );
      assert.equal(outcome.kind, 'deny', 'answered by the server, not forwarded');
      assert.ok(outcome.kind === 'deny' && outcome.status < 300, `status ${outcome.status}`);
      assert.deepEqual(identityAtUpstream(outcome), new Map());
    });
  }

  // The session cookie is a credential: an allow for a session or a bearer token takes it out
  // of the upstream's `cookie` header, and a public path (often another, less trusted upstream:
  // assets, a CDN origin) must not hand it over either.
  for (const modeName of modeNames) {
    it(`${modeName}: a public path never forwards the session cookie`, async () => {
      const browser = browsers.get(modeName)!;
      const outcome = await browser.request(`${origin}/public/logo.png`, {
        extraCookies: ['theme=dark'],
        navigate: false,
      });
      assert.equal(outcome.kind, 'allow');
      const cookie = outcome.kind === 'allow' ? outcome.upstream.headers.get('cookie') : undefined;
      assert.doesNotMatch(cookie ?? '', /_eoa/, 'no session or login-state cookie');
      assert.match(cookie ?? '', /theme=dark/, 'other cookies are kept');
    });
  }
});
