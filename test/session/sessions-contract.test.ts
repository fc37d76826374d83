/**
 * What the pipeline may rely on from its `Sessions`, whichever store keeps them: one suite run
 * against cookie sessions and against server sessions on a real redis-server, each over replicas
 * that share the store as `main.ts` wires them (revocations, login-replay marks).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/observability/logger.ts';
import { CookieSessions } from '../../src/session/cookie-sessions.ts';
import { serverSessionReuseMs } from '../../src/session/server-session-cache.ts';
import { ServerSessions } from '../../src/session/server-sessions.ts';
import { SessionRevocations } from '../../src/session/session-revocations.ts';
import type { NewSession, Session } from '../../src/session/session.ts';
import type { SessionLoad, SessionOptions, Sessions } from '../../src/session/sessions.ts';
import { createAppKeyspaces, type AppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { createRedisBackend } from '../../src/store/redis-backend.ts';
import type { StoreBackend } from '../../src/store/store-backend.ts';
import { startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { applySetCookie, attributesOf, nameOf } from './browser-cookies.ts';
import { baseOptions as sharedOptions, MINUTE } from './session-fixtures.ts';

const COOKIE = '__Host-_eoa_app';

const baseOptions: SessionOptions = {
  ...sharedOptions,
  secrets: ['contract-session-secret-at-least-32-bytes'],
  cookieName: '_eoa_app',
};

const login: NewSession = {
  sub: 'alice',
  sid: 'idp-session-1',
  claims: { sub: 'alice', email: 'alice@example.com', groups: ['admins'] },
  tokens: {
    accessToken: 'access-1',
    refreshToken: 'refresh-1',
    idToken: 'id-1',
    expiresAt: 1_700_000_300_000,
  },
};

/** One replica: its sessions and the revocations `main.ts` builds beside them. */
interface Replica {
  readonly sessions: Sessions;
  readonly revocations: SessionRevocations;
}

/** Builds a replica's sessions over the shared store; each call is another replica. */
type SessionsFactory = (
  options: SessionOptions,
  keyspaces: AppKeyspaces,
  deps: { readonly now: () => number } & Pick<Replica, 'revocations'>,
) => Sessions;

/** A shared store for one test, and how to close it. */
interface StoreUnderTest {
  readonly backend: StoreBackend;
  close(): Promise<void>;
}

const cookieSessions: SessionsFactory = (options, keyspaces, deps) =>
  new CookieSessions(options, {
    now: deps.now,
    loginReplayMarks: keyspaces.loginReplayMarks,
    isRevoked: deps.revocations.isRevoked,
  });

const serverSessions: SessionsFactory = (options, keyspaces, deps) =>
  new ServerSessions(options, {
    now: deps.now,
    loginReplayMarks: keyspaces.loginReplayMarks,
    isRevoked: deps.revocations.isRevoked,
    serverSessions: keyspaces,
  });

function valid(result: SessionLoad): Session {
  if (result.kind !== 'valid') assert.fail(`expected a valid session, got ${result.kind}`);
  return result.session;
}

/** A value as sealed: own data only, accessors read. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** `jar` with one character in the middle of the session cookie changed. */
function tampered(jar: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map(jar);
  const value = out.get(COOKIE)!;
  const at = Math.floor(value.length / 2);
  const swapped = value[at] === 'A' ? 'B' : 'A';
  out.set(COOKIE, value.slice(0, at) + swapped + value.slice(at + 1));
  return out;
}

function runSessionsContract(
  name: string,
  factory: SessionsFactory,
  openStore: (now: () => number) => Promise<StoreUnderTest>,
): void {
  /** Runs `body` with a clock and replicas over one fresh store. */
  async function withReplicas(
    body: (world: {
      replica: (options?: Partial<SessionOptions>) => Replica;
      advance: (ms: number) => void;
      now: () => number;
    }) => Promise<void>,
  ): Promise<void> {
    let t = 1_700_000_000_000;
    const now = () => t;
    const store = await openStore(now);
    try {
      const keyspaces = createAppKeyspaces(store.backend, {
        app: 'app',
        sessionMaxAge: baseOptions.maxAge,
        loginTimeout: baseOptions.loginTimeout,
        refreshLockTtl: 10_000,
        refreshResultTtl: 60_000,
        now,
      });
      const replica = (options: Partial<SessionOptions> = {}): Replica => {
        const revocations = new SessionRevocations(keyspaces, keyspaces, { now });
        const sessions = factory({ ...baseOptions, ...options }, keyspaces, { now, revocations });
        return { sessions, revocations };
      };
      await body({ replica, now, advance: (ms) => (t += ms) });
    } finally {
      await store.close();
    }
  }

  async function loggedIn(sessions: Sessions, data: NewSession = login) {
    const created = await sessions.create(data, new Map(), true);
    return { created, browser: applySetCookie(new Map(), created.setCookie) };
  }

  describe(`sessions contract: ${name}`, () => {
    it('no session cookie is no session', () =>
      withReplicas(async ({ replica }) => {
        const { sessions } = replica();
        const cookies = new Map([['theme', 'dark']]);
        assert.deepEqual(await sessions.load(cookies, true), { kind: 'none' });
        assert.deepEqual(sessions.cookieNames(cookies), []);
      }));

    it('a new session loads on another replica as it was created', () =>
      withReplicas(async ({ replica, now }) => {
        const { created, browser } = await loggedIn(replica().sessions);
        assert.deepEqual(created.setCookie.map(nameOf), [COOKIE]);
        assert.equal(created.session.createdAt, now());
        browser.set('theme', 'dark');
        const loaded = await replica().sessions.load(browser, true);
        assert.deepEqual(plain(valid(loaded)), plain(created.session));
        assert.deepEqual(loaded.kind === 'valid' && loaded.cookieNames, [COOKIE]);
        assert.deepEqual(loaded.kind === 'valid' && loaded.setCookie, []);
      }));

    it('an update is what the next load sees; identity and start are kept', () =>
      withReplicas(async ({ replica, advance, now }) => {
        const { sessions } = replica();
        const { created, browser } = await loggedIn(sessions);
        advance(MINUTE);
        const loaded = await sessions.load(browser, true);
        if (loaded.kind !== 'valid') assert.fail('not valid');
        const tokens = { accessToken: 'access-2', refreshToken: 'refresh-2', expiresAt: now() };
        const claims = { ...login.claims, email: 'alice@new.example' };
        const updated = await sessions.update(loaded, { tokens, claims }, browser, true);
        applySetCookie(browser, updated.setCookie);
        for (const reader of [sessions, replica().sessions]) {
          const session = valid(await reader.load(browser, true));
          assert.deepEqual(plain(session.tokens), tokens);
          assert.deepEqual(session.claims, claims);
          assert.equal(session.id, created.session.id);
          assert.equal(session.createdAt, created.session.createdAt);
          assert.equal(session.lastSeenAt, now());
        }
      }));

    it('max age ends a session on every replica, and its cookie is expired', () =>
      withReplicas(async ({ replica, advance }) => {
        const options = { maxAge: 60 * MINUTE };
        const here = replica(options).sessions;
        const { browser } = await loggedIn(here);
        advance(60 * MINUTE - 1);
        valid(await here.load(browser, true));
        advance(1);
        const result = await replica(options).sessions.load(browser, true);
        assert.equal(result.kind, 'expired');
        assert.equal(result.kind === 'expired' && result.reason, 'max_age');
        assert.deepEqual(result.kind === 'expired' && result.setCookie.map(nameOf), [COOKIE]);
        const again = await here.load(browser, true);
        assert.notEqual(again.kind, 'valid', 'nor on the replica that served it');
        assert.deepEqual(
          again.kind !== 'valid' && again.kind !== 'none' && again.setCookie.map(nameOf),
          [COOKIE],
        );
      }));

    it('idle timeout: a session in use lives on, an idle one ends', () =>
      withReplicas(async ({ replica, advance }) => {
        const options = { idleTimeout: 10 * MINUTE };
        const { sessions } = replica(options);
        const { browser } = await loggedIn(sessions);
        for (let i = 0; i < 5; i++) {
          advance(9 * MINUTE);
          const loaded = await sessions.load(browser, true);
          valid(loaded);
          applySetCookie(browser, loaded.kind === 'valid' ? loaded.setCookie : []);
        }
        advance(10 * MINUTE);
        const result = await replica(options).sessions.load(browser, true);
        assert.equal(result.kind === 'expired' && result.reason, 'idle');
      }));

    it('logout: the cookies are expired, and a copy of the cookie is refused on every replica', () =>
      withReplicas(async ({ replica, advance }) => {
        const here = replica();
        const there = replica();
        const { browser } = await loggedIn(here.sessions);
        const copy = new Map(browser);
        valid(await there.sessions.load(copy, true));
        // As the logout step does it: load, end, and mark the session ended.
        const session = valid(await here.sessions.load(browser, true));
        const lines = await here.sessions.end(browser, true);
        await here.revocations.endSession(session);
        assert.deepEqual(lines.map(nameOf), [COOKIE]);
        assert.equal(attributesOf(lines[0]!).get('max-age'), '0');
        assert.deepEqual(await here.sessions.load(applySetCookie(browser, lines), true), {
          kind: 'none',
        });
        assert.notEqual((await here.sessions.load(copy, true)).kind, 'valid', 'at once here');
        advance(serverSessionReuseMs);
        assert.notEqual((await there.sessions.load(copy, true)).kind, 'valid', 'and there');
      }));

    for (const by of ['sid', 'sub'] as const) {
      it(`back-channel logout by ${by} ends the sessions it names, on every replica`, () =>
        withReplicas(async ({ replica, advance }) => {
          const here = replica();
          const there = replica();
          const { browser: named } = await loggedIn(here.sessions);
          const other = { ...login, sid: 'idp-session-2', sub: by === 'sid' ? 'alice' : 'bob' };
          const { browser: kept } = await loggedIn(here.sessions, other);
          advance(1);
          // As provider-initiated logout does it: mark, then delete what the store holds.
          const value = by === 'sid' ? 'idp-session-1' : 'alice';
          await here.revocations.endAll({ by, value });
          await (by === 'sid' ? here.sessions.endBySid(value) : here.sessions.endBySub(value));
          advance(serverSessionReuseMs);
          for (const { sessions } of [here, there]) {
            assert.equal((await sessions.load(named, true)).kind === 'valid', false);
            valid(await sessions.load(kept, true));
          }
        }));
    }

    it('a tampered session cookie is refused and expired', () =>
      withReplicas(async ({ replica }) => {
        const { sessions } = replica();
        const { browser } = await loggedIn(sessions);
        const result = await sessions.load(tampered(browser), true);
        assert.equal(result.kind, 'invalid');
        assert.deepEqual(result.kind === 'invalid' && result.setCookie.map(nameOf), [COOKIE]);
        valid(await sessions.load(browser, true));
      }));

    it("the legacy name's cookies beside a valid session are expired and listed", () =>
      withReplicas(async ({ replica }) => {
        const { sessions } = replica({ legacyCookieName: '_eoa' });
        const { browser } = await loggedIn(sessions);
        browser.set('__Host-_eoa', 'an-old-session');
        const result = await sessions.load(browser, true);
        valid(result);
        assert.deepEqual(result.kind === 'valid' && result.setCookie.map(nameOf), ['__Host-_eoa']);
        assert.deepEqual(result.kind === 'valid' && result.cookieNames, [COOKIE, '__Host-_eoa']);
      }));

    it('a login state started on one replica is redeemed once, on another', () =>
      withReplicas(async ({ replica }) => {
        const flow = { state: 'state-1', nonce: 'nonce-1', codeVerifier: 'v', returnTo: '/' };
        const here = replica().sessions;
        const jar = applySetCookie(new Map(), here.loginStates.start(flow, new Map(), true));
        assert.equal(here.cookieNames(jar).length, 1, 'the flow is among our cookies');
        const there = replica().sessions;
        const taken = await there.loginStates.take(jar, 'state-1', true);
        assert.equal(taken.kind, 'ok');
        assert.equal((await here.loginStates.take(jar, 'state-1', true)).kind, 'in_progress');
        if (taken.kind === 'ok') await there.loginStates.complete(taken);
        assert.equal((await here.loginStates.take(jar, 'state-1', true)).kind, 'replayed');
      }));
  });
}

runSessionsContract('cookie sessions', cookieSessions, (now) => {
  const backend = createMemoryBackend({ now, sweepIntervalMs: 0 });
  return Promise.resolve({ backend, close: () => backend.close() });
});

describe('server sessions on a real redis-server', () => {
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.stop());

  runSessionsContract('server sessions', serverSessions, async () => {
    const backend = createRedisBackend(
      { url: redis.url, keyPrefix: `t-${randomUUID()}:`, commandTimeout: 1_000 },
      { logger: silentLogger() },
    );
    await backend.ready();
    return { backend, close: () => backend.close() };
  });
});
