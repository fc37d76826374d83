/**
 * Attack class: cookie tampering and cross-app / cross-deployment reuse.
 *
 * Two apps share a session secret (as the shipped examples set it, under `defaults`): `grafana`
 * trusts a strong provider, `wiki` a weak one where anybody can be "alice". A second deployment
 * (`staging`) runs the same apps with the same secret. Each row is an attack on `grafana` in the
 * `prod` deployment, sent as a real Check (Envoy's upstream protos); the expected outcome is
 * safe: never a session for anyone but the one the strong provider signed in, never a failed
 * Check, and a foreign cookie refused exactly like a tampered one (same answer, same log line).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, locationOf, setCookieLines } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

/** One secret for every app of both deployments: what the binding must hold against. */
const sharedSecret = 'Vd3kQ8zR1mX6pT9wL4sN7bH2cJ5fG0yA-shared';
const clientSecret = 'Kp9wT2mQ7xL4vR8sN3dF6hJ1';
const grafana = 'https://grafana.example.com';
const wiki = 'https://wiki.example.com';
/**
 * The session cookie names, as the apps set them at login (`__Host-_eoa_grafana`,
 * `__Host-_eoa_wiki`): read from the logins, so the table attacks whatever the server does.
 */
let name = '';
let wikiName = '';
const navigation: [string, string][] = [
  ['accept', 'text/html,application/xhtml+xml'],
  ['sec-fetch-mode', 'navigate'],
];

/** What the browsers of this attack class hold, gathered once with real logins. */
interface Loot {
  /** alice's valid grafana session in prod (signed in at the strong provider). */
  readonly alice: string;
  /** A session whose claims need several chunks, `[name.0, name.1, …]` values. */
  readonly chunks: readonly string[];
  /** "alice" at the weak provider: wiki's session cookie value in prod. */
  readonly wikiSession: string;
  /** alice's grafana session in the staging deployment (same apps, same secret). */
  readonly stagingSession: string;
}

interface Attack {
  readonly url?: string;
  readonly cookie: string;
  readonly headers?: readonly (readonly [string, string])[];
}

/** Expected safe outcomes. */
type Expect =
  /** Sent to sign in at grafana's own (strong) provider, the session cookies expired. */
  | 'login'
  /** 401 with a challenge (an API client), never a redirect. */
  | 'unauthenticated'
  /** 400 before any decryption: the request itself is malformed. */
  | 'bad_request'
  /** A callback refused with 400: no session is created. */
  | 'callback_refused'
  /** The legitimate session, served (the attack changed nothing that matters). */
  | 'alice';

interface Row {
  readonly attack: string;
  readonly build: (loot: Loot, context: Context) => Attack | Promise<Attack>;
  readonly expect: Expect;
  /** The `session cookie refused` log line's reason, when one must be written. */
  readonly logged?: 'undecodable' | 'legacy';
  /** A cookie the answer must expire (`Max-Age=0`); `session` stands for the app's own name. */
  readonly expires?: string;
}

interface Context {
  readonly strong: TestProvider;
  readonly prod: EnvoyClient;
  readonly staging: EnvoyClient;
}

const segments = (value: string) => value.split('.');

/** Flips the lowest bit of the byte at `at` (from the end when negative) of segment `index`. */
function flip(value: string, index: number, at: number): string {
  const parts = segments(value);
  const bytes = Buffer.from(parts[index]!, 'base64url');
  const i = at < 0 ? bytes.length + at : at;
  bytes[i]! ^= 1;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

/** The value with its protected header replaced by `header` (JSON). */
function withHeader(value: string, header: Record<string, unknown>): string {
  const parts = segments(value);
  parts[0] = Buffer.from(JSON.stringify(header)).toString('base64url');
  return parts.join('.');
}

function headerOf(value: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segments(value)[0]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

const session = (value: string) => `${name}=${value}`;

/** A login started at `origin` through `envoy`: its login-state cookie and its `state`. */
async function startLogin(
  envoy: EnvoyClient,
  origin: string,
): Promise<{ cookie: [string, string]; state: string }> {
  const outcome = await envoy.check({ url: `${origin}/`, headers: navigation });
  const line = setCookieLines(outcome).find((l) => l.includes('_login_'))!;
  const pair = line.slice(0, line.indexOf(';'));
  const eq = pair.indexOf('=');
  const state = new URL(locationOf(outcome)!).searchParams.get('state')!;
  return { cookie: [pair.slice(0, eq), pair.slice(eq + 1)], state };
}

/** A callback for grafana with `state`, carrying `cookie` under grafana's login-state name. */
function callback(state: string, value: string): Attack {
  return {
    url: `${grafana}/oauth2/callback?code=attacker-code&state=${encodeURIComponent(state)}`,
    cookie: `${name}_login_AAAAAAAA=${value}`,
  };
}

const rows: readonly Row[] = [
  // Bit flips and edits inside the compact JWE
  {
    attack: 'one bit flipped in the ciphertext',
    build: (l) => ({ cookie: session(flip(l.alice, 3, 10)) }),
    expect: 'login',
    logged: 'undecodable',
    expires: 'session',
  },
  {
    attack: 'one bit flipped in the last ciphertext byte',
    build: (l) => ({ cookie: session(flip(l.alice, 3, -1)) }),
    expect: 'login',
  },
  {
    attack: 'one bit flipped in the authentication tag',
    build: (l) => ({ cookie: session(flip(l.alice, 4, 0)) }),
    expect: 'login',
  },
  {
    attack: 'one bit flipped in the IV',
    build: (l) => ({ cookie: session(flip(l.alice, 2, 5)) }),
    expect: 'login',
  },
  {
    attack: 'the kid changed by one character',
    build: (l) => {
      const header = headerOf(l.alice);
      const kid = String(header['kid']);
      return {
        cookie: session(withHeader(l.alice, { ...header, kid: `${kid.slice(0, -1)}A` })),
      };
    },
    expect: 'login',
  },
  {
    attack: 'the protected header re-serialised (same members, other order)',
    build: (l) => {
      const { kid } = headerOf(l.alice);
      return { cookie: session(withHeader(l.alice, { kid, enc: 'A256GCM', alg: 'dir' })) };
    },
    // The header is the AAD: any other bytes fail authentication.
    expect: 'login',
  },
  {
    attack: 'alg: none in the header',
    build: (l) => ({ cookie: session(withHeader(l.alice, { alg: 'none', kid: 'x' })) }),
    expect: 'login',
  },
  {
    attack: 'zip: DEF added to the header',
    build: (l) => ({ cookie: session(withHeader(l.alice, { ...headerOf(l.alice), zip: 'DEF' })) }),
    expect: 'login',
  },
  {
    attack: 'crit added to the header',
    build: (l) => ({
      cookie: session(withHeader(l.alice, { ...headerOf(l.alice), crit: ['exp'], exp: 1 })),
    }),
    expect: 'login',
  },
  {
    attack: 'a non-canonical last character in the tag (same bytes to a lax decoder)',
    build: (l) => {
      const parts = segments(l.alice);
      const tag = parts[4]!;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      parts[4] = tag.slice(0, -1) + alphabet[alphabet.indexOf(tag.at(-1)!) ^ 1]!;
      return { cookie: session(parts.join('.')) };
    },
    expect: 'login',
  },
  // Truncation and malformed values
  {
    attack: 'truncated by one character',
    build: (l) => ({ cookie: session(l.alice.slice(0, -1)) }),
    expect: 'login',
  },
  {
    attack: 'truncated to the protected header',
    build: (l) => ({ cookie: session(segments(l.alice)[0]!) }),
    expect: 'login',
  },
  { attack: 'an empty value', build: () => ({ cookie: `${name}=` }), expect: 'login' },
  {
    attack: 'a sixth segment appended',
    build: (l) => ({ cookie: session(`${l.alice}.AAAA`) }),
    expect: 'login',
  },
  {
    attack: 'non-base64url characters in the ciphertext',
    build: (l) => {
      const parts = segments(l.alice);
      parts[3] = `${parts[3]!.slice(0, 8)}!*~${parts[3]!.slice(11)}`;
      return { cookie: session(parts.join('.')) };
    },
    expect: 'login',
  },
  {
    attack: 'base64 padding added to the tag',
    build: (l) => ({ cookie: session(`${l.alice}==`) }),
    expect: 'login',
  },
  {
    attack: 'standard base64 (+ /) instead of base64url',
    build: (l) => ({ cookie: session(l.alice.replace(/-/g, '+').replace(/_/g, '/')) }),
    // Only when the value held - or _; else it is the same value: alice either way, or refused.
    expect: 'login',
  },
  {
    attack: 'percent-encoded value',
    build: (l) => ({ cookie: session(encodeURIComponent(l.alice).replace(/\./g, '%2E')) }),
    expect: 'login',
  },
  {
    attack: 'the __Host- prefix dropped over https',
    build: (l) => ({ cookie: `${name.replace(/^__Host-/, '')}=${l.alice}` }),
    expect: 'login',
  },
  {
    attack: '4 KiB of random base64url',
    build: () => ({ cookie: session(Buffer.alloc(3_072, 7).toString('base64url')) }),
    expect: 'login',
  },
  {
    attack: 'a huge cookie (70 KB, over the header limit)',
    build: () => ({ cookie: session('A'.repeat(70_000)) }),
    expect: 'bad_request',
  },
  {
    attack: 'many cookies (300 pairs)',
    build: (l) => ({
      cookie: [session(l.alice), ...Array.from({ length: 300 }, (_, i) => `junk${i}=x`)].join('; '),
    }),
    expect: 'bad_request',
  },
  {
    attack: 'an API client with a tampered cookie',
    build: (l) => ({
      cookie: session(flip(l.alice, 3, 3)),
      headers: [['accept', 'application/json']],
    }),
    expect: 'unauthenticated',
  },
  // Duplicated names and chunks
  {
    attack: 'a duplicated name: a tossed cookie first, the real one second',
    build: (l) => ({ cookie: `${session(l.wikiSession)}; ${session(l.alice)}` }),
    // The first wins (as in Envoy and most servers): refused, never the attacker's session.
    expect: 'login',
  },
  {
    attack: 'a duplicated name: the real one first, a tampered copy second',
    build: (l) => ({ cookie: `${session(l.alice)}; ${session(flip(l.alice, 3, 1))}` }),
    expect: 'alice',
  },
  {
    attack: 'chunks swapped',
    build: (l) => ({
      cookie: `${name}.0=${l.chunks[1]}; ${name}.1=${l.chunks[0]}; ${l.chunks
        .slice(2)
        .map((v, i) => `${name}.${i + 2}=${v}`)
        .join('; ')}`,
    }),
    expect: 'login',
  },
  {
    attack: 'a chunk missing',
    build: (l) => ({
      cookie: l.chunks
        .map((v, i) => `${name}.${i}=${v}`)
        .filter((_, i) => i !== 1)
        .join('; '),
    }),
    expect: 'login',
  },
  {
    attack: 'a junk chunk appended',
    build: (l) => ({
      cookie: [...l.chunks, 'AAAA'].map((v, i) => `${name}.${i}=${v}`).join('; '),
    }),
    expect: 'login',
  },
  {
    attack: 'a whole tampered value beside valid chunks',
    build: (l) => ({
      cookie: [session(flip(l.alice, 3, 2)), ...l.chunks.map((v, i) => `${name}.${i}=${v}`)].join(
        '; ',
      ),
    }),
    expect: 'login',
  },
  // Reuse across apps and deployments
  {
    attack: "wiki's session (weak provider, same secret) under grafana's name",
    build: (l) => ({ cookie: session(l.wikiSession) }),
    expect: 'login',
    logged: 'undecodable',
    expires: 'session',
  },
  {
    attack: "wiki's session under wiki's name, sent to grafana",
    build: (l) => ({ cookie: `${wikiName}=${l.wikiSession}` }),
    expect: 'login',
  },
  {
    attack: "grafana's session sent to wiki under wiki's name",
    build: (l) => ({ url: `${wiki}/`, cookie: `${wikiName}=${l.alice}` }),
    // wiki's own provider, never a session: checked below against wiki's issuer.
    expect: 'login',
  },
  {
    attack: "the staging deployment's grafana session (same app, issuer, client and secret)",
    build: (l) => ({ cookie: session(l.stagingSession) }),
    expect: 'login',
    logged: 'undecodable',
    expires: 'session',
  },
  {
    attack: 'the old shared _eoa name carrying a valid grafana session',
    build: (l) => ({ cookie: `__Host-_eoa=${l.alice}; theme=dark` }),
    expect: 'login',
    logged: 'legacy',
    expires: '__Host-_eoa',
  },
  {
    attack: 'old _eoa chunks and login state beside a valid session',
    build: (l) => ({
      cookie: `${session(l.alice)}; __Host-_eoa.0=AAAA; __Host-_eoa_login_AbCdEf12=x`,
    }),
    expect: 'alice',
    expires: '__Host-_eoa_login_AbCdEf12',
  },
  // Login-state cookies
  {
    attack: "another browser's login state swapped in at the callback",
    build: async (_l, c) => {
      const victim = await startLogin(c.prod, grafana);
      const attacker = await startLogin(c.prod, grafana);
      return callback(attacker.state, victim.cookie[1]);
    },
    expect: 'callback_refused',
  },
  {
    attack: "wiki's login state renamed to grafana's, with its own state",
    build: async (_l, c) => {
      const foreign = await startLogin(c.prod, wiki);
      return callback(foreign.state, foreign.cookie[1]);
    },
    expect: 'callback_refused',
  },
  {
    attack: "the staging deployment's login state at prod's callback",
    build: async (_l, c) => {
      const foreign = await startLogin(c.staging, grafana);
      return callback(foreign.state, foreign.cookie[1]);
    },
    expect: 'callback_refused',
  },
  {
    attack: 'a login state with a bit flipped, with its own state',
    build: async (_l, c) => {
      const own = await startLogin(c.prod, grafana);
      return callback(own.state, flip(own.cookie[1], 3, 4));
    },
    expect: 'callback_refused',
  },
  {
    attack: 'a session cookie presented as a login state',
    build: (l) => callback('any-state', l.alice),
    expect: 'callback_refused',
  },
];

describe('adversarial: cookie tampering and cross-app / cross-deployment reuse', () => {
  let strong: TestProvider;
  let weak: TestProvider;
  let prod: TestServer;
  let staging: TestServer;
  let log: CapturedLog;
  let context: Context;
  let loot: Loot;

  const clients = (origin: string, clientId: string) => [
    { clientId, clientSecret, redirectUris: [`${origin}/oauth2/callback`] },
  ];
  const deployment = (label: string, strongIssuer: string, weakIssuer: string) => ({
    deployment: label,
    // As the shipped examples set it: one secret for every app.
    defaults: { session: { secrets: [sharedSecret] } },
    apps: [
      {
        name: 'grafana',
        match: { hosts: ['grafana.example.com'] },
        oidc: { issuer: strongIssuer, clientId: 'grafana', clientSecret, probeInterval: '1h' },
      },
      {
        name: 'wiki',
        match: { hosts: ['wiki.example.com'] },
        oidc: { issuer: weakIssuer, clientId: 'wiki', clientSecret, probeInterval: '1h' },
      },
    ],
  });

  before(async () => {
    strong = await startTestProvider({
      clients: clients(grafana, 'grafana'),
      users: [
        { sub: 'alice', email: 'alice@example.com', emailVerified: true },
        { sub: 'big', extraClaims: { notes: 'x'.repeat(10_000) } },
      ],
    });
    // The weak provider lets anybody sign in as "alice".
    weak = await startTestProvider({
      clients: clients(wiki, 'wiki'),
      users: [{ sub: 'alice', email: 'alice@example.com', emailVerified: true }],
    });
    log = captureLog('info');
    prod = await startTestServer(deployment('prod', strong.issuer, weak.issuer), {
      logger: log.logger,
    });
    staging = await startTestServer(deployment('staging', strong.issuer, weak.issuer));
    context = {
      strong,
      prod: grpcModeEnvoy(prod),
      staging: grpcModeEnvoy(staging),
    };
    const signIn = async (envoy: EnvoyClient, origin: string, user = 'alice') => {
      const browser = new AppBrowser(envoy);
      await browser.login(`${origin}/`, user);
      const [cookie = ''] = browser.cookies.keys();
      return { browser, cookie, value: browser.cookies.get(cookie) };
    };
    const alice = await signIn(context.prod, grafana);
    name = alice.cookie;
    const big = await signIn(context.prod, grafana, 'big');
    const chunks: string[] = [];
    for (let i = 0; big.browser.cookies.has(`${name}.${i}`); i++) {
      chunks.push(big.browser.cookies.get(`${name}.${i}`)!);
    }
    assert.ok(chunks.length >= 3, 'a chunked session');
    const wikiLogin = await signIn(context.prod, wiki);
    wikiName = wikiLogin.cookie;
    loot = {
      alice: alice.value!,
      chunks,
      wikiSession: wikiLogin.value!,
      stagingSession: (await signIn(context.staging, grafana)).value!,
    };
    assert.equal(name, '__Host-_eoa_grafana', "each app's own default name");
    assert.equal(wikiName, '__Host-_eoa_wiki');
  });

  after(async () => {
    context.prod.close();
    context.staging.close();
    await Promise.all([prod.close(), staging.close()]);
    await Promise.all([strong.close(), weak.close()]);
  });

  it('the legitimate session is served (the baseline every row departs from)', async () => {
    const outcome = await context.prod.check({
      url: `${grafana}/`,
      headers: [...navigation, ['cookie', session(loot.alice)]],
    });
    assert.equal(
      outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
      'alice',
    );
  });

  for (const row of rows) {
    it(`${row.attack} → ${row.expect}`, async () => {
      const attack = await row.build(loot, context);
      const url = attack.url ?? `${grafana}/private`;
      const refusedBefore = log.matching(/^session cookie refused$/).length;
      const outcome = await context.prod.check({
        url,
        headers: [...(attack.headers ?? navigation), ['cookie', attack.cookie]],
      });
      assert.notEqual(outcome.kind, 'error', 'always a decision, never a failed Check');
      assertOutcome(outcome, row.expect, url.startsWith(wiki) ? weak.issuer : strong.issuer);
      if (row.expires !== undefined) {
        const cookie = row.expires === 'session' ? name : row.expires;
        assert.ok(
          setCookieLines(outcome).some((l) => l.startsWith(`${cookie}=;`) && /Max-Age=0/.test(l)),
          `${cookie} expired`,
        );
      }
      if (row.logged !== undefined) {
        const lines = log.matching(/^session cookie refused$/).slice(refusedBefore);
        assert.equal(lines.length, 1, 'one log line');
        assert.equal(lines[0]!['reason'], row.logged);
        assert.equal(typeof lines[0]!['requestId'], 'string');
      }
    });
  }

  it('never writes a cookie value to the log', () => {
    const text = log.text();
    for (const value of [loot.alice, loot.wikiSession, loot.stagingSession]) {
      assert.equal(text.includes(value.slice(20, 60)), false);
    }
  });
});

function assertOutcome(outcome: Outcome, expect: Expect, issuer: string): void {
  const status = outcome.kind === 'deny' ? outcome.status : undefined;
  switch (expect) {
    case 'login': {
      assert.equal(status, 302, `sent to log in, got ${outcome.kind} ${status}`);
      assert.ok(locationOf(outcome)!.startsWith(`${issuer}/auth?`), locationOf(outcome));
      const expired = setCookieLines(outcome).filter((l) => /Max-Age=0/.test(l));
      const sent = setCookieLines(outcome).filter((l) => !/Max-Age=0|_login_/.test(l));
      assert.deepEqual(sent, [], 'no session cookie handed out');
      assert.ok(expired.every((l) => l.startsWith('__Host-') || l.startsWith('_eoa')));
      return;
    }
    case 'unauthenticated':
      assert.equal(status, 401);
      assert.equal(locationOf(outcome), undefined);
      return;
    case 'bad_request':
      assert.equal(status, 400);
      return;
    case 'callback_refused':
      assert.equal(status, 400);
      assert.equal(locationOf(outcome), undefined);
      assert.ok(
        setCookieLines(outcome).every((l) => /Max-Age=0/.test(l)),
        'no session cookie handed out',
      );
      return;
    case 'alice':
      assert.equal(outcome.kind, 'allow');
      if (outcome.kind !== 'allow') return;
      assert.equal(outcome.upstream.headers.get('x-auth-request-user'), 'alice');
      assert.doesNotMatch(outcome.upstream.headers.get('cookie') ?? '', /_eoa/, 'stripped');
  }
}
