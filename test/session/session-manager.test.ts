/** The session manager over both stores: lifetimes, touches, revocation, cache, rotation, logout. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthzError } from '../../src/errors.ts';
import { cacheKeyFor, SessionCache } from '../../src/session/session-cache.ts';
import {
  SessionManager,
  type RevocationSubject,
  type SessionManagerDeps,
  type SessionManagerOptions,
} from '../../src/session/session-manager.ts';
import type { NewSession, Session } from '../../src/session/session.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import type { StoreBackend } from '../../src/store/store-backend.ts';
import { applySetCookie, attributesOf, nameOf } from './browser-cookies.ts';

const SECRET = 'primary-session-secret-at-least-32-bytes';
const OLD_SECRET = 'retired-session-secret-at-least-32-bytes';
const MINUTE = 60_000;

const baseOptions: SessionManagerOptions = {
  store: 'cookie',
  secrets: [SECRET],
  cookieName: '_eoa',
  maxAge: 24 * 60 * MINUTE,
  sameSite: 'lax',
  maxPendingLogins: 5,
  loginTimeout: 10 * MINUTE,
};

const login: NewSession = {
  sub: 'alice',
  sid: 'idp-session-1',
  claims: { sub: 'alice', email: 'alice@example.com', email_verified: true, groups: ['admins'] },
  tokens: {
    accessToken: 'access-1',
    refreshToken: 'refresh-1',
    idToken: 'id-1',
    expiresAt: 1_700_000_300_000,
  },
};

function clock() {
  let t = 1_700_000_000_000;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

function manager(
  options: Partial<SessionManagerOptions> = {},
  deps: SessionManagerDeps = {},
): SessionManager {
  return new SessionManager({ ...baseOptions, ...options }, deps);
}

function serverDeps(backend: StoreBackend, now: () => number): SessionManagerDeps {
  const keyspaces = createAppKeyspaces(backend, {
    app: 'app',
    sessionMaxAge: baseOptions.maxAge,
    loginTimeout: baseOptions.loginTimeout,
    now,
  });
  return { now, serverSessions: keyspaces, loginReplayMarks: keyspaces.loginReplayMarks };
}

function valid(result: Awaited<ReturnType<SessionManager['load']>>): Session {
  if (result.kind !== 'valid')
    assert.fail(`expected a valid session, got ${JSON.stringify(result)}`);
  return result.session;
}

/** A value as sealed: own data only, accessors read. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe('session manager (cookie store)', () => {
  it('no cookie is no session', async () => {
    const m = manager();
    assert.deepEqual(await m.load(new Map([['other', 'x']]), true), { kind: 'none' });
  });

  it('create → load returns the session with identity, times and cookie names', async () => {
    const c = clock();
    const m = manager({}, { now: c.now });
    const created = await m.create(login, new Map(), true);
    const browser = applySetCookie(new Map([['other', 'keep']]), created.setCookie);
    const result = await m.load(browser, true);
    const session = valid(result);
    assert.deepEqual(plain(session), created.session);
    assert.equal(session.sub, 'alice');
    assert.equal(session.sid, 'idp-session-1');
    assert.equal(session.createdAt, c.now());
    assert.match(session.id, /^[A-Za-z0-9_-]{16}$/);
    assert.deepEqual(result.kind === 'valid' && result.cookieNames, ['__Host-_eoa']);
    assert.deepEqual(result.kind === 'valid' && result.setCookie, []);
    const maxAge = attributesOf(created.setCookie[0]!).get('max-age');
    assert.equal(maxAge, String(24 * 60 * 60));
  });

  it('a hot session is served from the cache without decrypting', async () => {
    const c = clock();
    const writer = manager({}, { now: c.now });
    const browser = applySetCookie(
      new Map(),
      (await writer.create(login, new Map(), true)).setCookie,
    );
    // Another replica: same secrets, its own cache.
    const reader = manager({}, { now: c.now });
    valid(await reader.load(browser, true));
    assert.equal(reader.codecStats.decrypts, 1);
    for (let i = 0; i < 100; i++) valid(await reader.load(browser, true));
    assert.equal(reader.codecStats.decrypts, 1, 'no decrypt on a cache hit');
  });

  it('cache entries expire with the session, and maxAge is enforced server-side', async () => {
    const c = clock();
    const cache = new SessionCache({ now: c.now });
    const m = manager({ maxAge: 60 * MINUTE }, { now: c.now, cache });
    const browser = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    const key = cacheKeyFor(browser.get('__Host-_eoa')!);
    c.advance(60 * MINUTE - 1);
    assert.ok(cache.get(key) !== undefined);
    valid(await m.load(browser, true));
    c.advance(1);
    assert.equal(cache.get(key), undefined, 'the entry died with the session');
    const result = await m.load(browser, true);
    assert.equal(result.kind, 'expired');
    assert.equal(result.kind === 'expired' && result.reason, 'max_age');
    assert.deepEqual(result.kind === 'expired' && result.setCookie.map(nameOf), ['__Host-_eoa']);
  });

  it('idleTimeout: re-issued at most once per interval, expired after idling', async () => {
    const c = clock();
    const m = manager({ idleTimeout: 10 * MINUTE }, { now: c.now });
    const browser = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    const original = new Map(browser);
    c.advance(30_000);
    const quiet = await m.load(browser, true);
    assert.deepEqual(quiet.kind === 'valid' && quiet.setCookie, [], 'not on every request');
    c.advance(4.5 * MINUTE);
    const touched = await m.load(browser, true);
    assert.equal(touched.kind === 'valid' && touched.setCookie.length, 1);
    assert.equal(valid(touched).lastSeenAt, c.now());
    applySetCookie(browser, touched.kind === 'valid' ? touched.setCookie : []);
    const again = await m.load(browser, true);
    assert.deepEqual(again.kind === 'valid' && again.setCookie, [], 'once per interval');
    c.advance(7 * MINUTE); // 12 minutes after login, 7 after the last touch
    const stale = await m.load(original, true);
    assert.equal(stale.kind === 'expired' && stale.reason, 'idle');
    valid(await m.load(browser, true));
  });

  it('without idleTimeout the cookie is never re-issued', async () => {
    const c = clock();
    const m = manager({}, { now: c.now });
    const browser = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    c.advance(60 * MINUTE);
    const result = await m.load(browser, true);
    assert.deepEqual(result.kind === 'valid' && result.setCookie, []);
  });

  it('a revoked session is refused, even while cached', async () => {
    const c = clock();
    const revoked = new Set<string>();
    const asked: RevocationSubject[] = [];
    const m = manager(
      {},
      {
        now: c.now,
        isRevoked: (subject) => {
          asked.push(subject);
          return Promise.resolve(revoked.has(subject.sid ?? ''));
        },
      },
    );
    const created = await m.create(login, new Map(), true);
    const browser = applySetCookie(new Map(), created.setCookie);
    valid(await m.load(browser, true));
    assert.deepEqual(asked[0], {
      id: created.session.id,
      sub: 'alice',
      sid: 'idp-session-1',
      createdAt: created.session.createdAt,
    });
    revoked.add('idp-session-1');
    const result = await m.load(browser, true);
    assert.equal(result.kind === 'expired' && result.reason, 'revoked');
  });

  it('a tampered cookie, or one from an unknown secret, is invalid and cleared', async () => {
    const m = manager();
    const foreign = manager({ secrets: ['some-other-secret-of-at-least-32-bytes'] });
    const browser = applySetCookie(
      new Map(),
      (await foreign.create(login, new Map(), true)).setCookie,
    );
    const result = await m.load(browser, true);
    assert.equal(result.kind === 'invalid' && result.reason, 'undecodable');
    assert.deepEqual(result.kind === 'invalid' && result.setCookie.map(nameOf), ['__Host-_eoa']);
    const junk = await m.load(new Map([['__Host-_eoa', 'garbage']]), true);
    assert.equal(junk.kind, 'invalid');
  });

  it('a cookie from a rotated-out secret still loads; new cookies use the new secret', async () => {
    const before = manager({ secrets: [OLD_SECRET] });
    const browser = applySetCookie(
      new Map(),
      (await before.create(login, new Map(), true)).setCookie,
    );
    const after = manager({ secrets: [SECRET, OLD_SECRET] });
    const session = valid(await after.load(browser, true));
    const updated = await after.update({ session, ref: { kind: 'cookie' } }, {}, browser, true);
    applySetCookie(browser, updated.setCookie);
    assert.equal((await before.load(browser, true)).kind, 'invalid', 'sealed with the new secret');
    valid(await manager().load(browser, true));
  });

  it('update replaces tokens and keeps identity', async () => {
    const c = clock();
    const m = manager({}, { now: c.now });
    const created = await m.create(login, new Map(), true);
    const browser = applySetCookie(new Map(), created.setCookie);
    c.advance(MINUTE);
    const tokens = {
      accessToken: 'access-2',
      refreshToken: 'refresh-2',
      expiresAt: c.now() + 300_000,
    };
    const updated = await m.update(created, { tokens }, browser, true);
    applySetCookie(browser, updated.setCookie);
    const session = valid(await m.load(browser, true));
    assert.deepEqual(plain(session.tokens), tokens);
    assert.equal(session.id, created.session.id);
    assert.equal(session.createdAt, created.session.createdAt);
    assert.equal(session.lastSeenAt, c.now());
  });

  it('a 10 KB claims session goes into several chunks and loads back', async () => {
    const m = manager();
    const big = { ...login, claims: { ...login.claims, blob: 'x'.repeat(10_000) } };
    const created = await m.create(big, new Map(), true);
    assert.ok(created.setCookie.length >= 3);
    const browser = applySetCookie(new Map(), created.setCookie);
    assert.deepEqual(valid(await manager().load(browser, true)).claims, big.claims);
    const small = await m.update(created, { claims: login.claims }, browser, true);
    applySetCookie(browser, small.setCookie);
    assert.deepEqual([...browser.keys()], ['__Host-_eoa'], 'stale chunks expired');
  });

  it('end clears every session cookie and forgets the cached decode', async () => {
    const m = manager();
    const browser = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    applySetCookie(
      browser,
      m.loginStates.start(
        { state: 's', nonce: 'n', codeVerifier: 'v', returnTo: '/' },
        browser,
        true,
      ),
    );
    assert.equal(m.cookieNames(browser).length, 2);
    valid(await m.load(browser, true));
    const decrypts = m.codecStats.decrypts;
    const lines = await m.end(browser, true);
    assert.deepEqual(lines.map(nameOf), ['__Host-_eoa']);
    assert.equal(attributesOf(lines[0]!).get('max-age'), '0');
    await m.load(browser, true);
    assert.equal(m.codecStats.decrypts, decrypts + 1, 'the cache entry was dropped');
  });

  describe('what the decoded-session cache keeps', () => {
    const idToken = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.id-token-signature';
    const refreshToken = 'refresh-token-kept-only-in-the-cookie';
    const withTokens: NewSession = { ...login, tokens: { ...login.tokens, idToken, refreshToken } };

    async function cachedLogin(deps: SessionManagerDeps = {}) {
      const cache = new SessionCache(deps.now === undefined ? {} : { now: deps.now });
      const m = manager({}, { ...deps, cache });
      const created = await m.create(withTokens, new Map(), true);
      const browser = applySetCookie(new Map(), created.setCookie);
      return { m, cache, browser, key: cacheKeyFor(browser.get('__Host-_eoa')!) };
    }

    it('holds neither the refresh token nor, for an app not forwarding it, the ID token', async () => {
      const { m, cache, browser, key } = await cachedLogin();
      // Filled when the cookie was sealed (login), and when another replica decodes it.
      const replicaCache = new SessionCache();
      const replica = manager({}, { cache: replicaCache });
      for (const [owner, ownCache] of [
        [m, cache],
        [replica, replicaCache],
      ] as const) {
        valid(await owner.load(browser, true));
        const entry = ownCache.get(key);
        assert.ok(entry !== undefined, 'the session is cached');
        assert.equal(entry.accessToken, 'access-1');
        assert.deepEqual(entry.claims, login.claims);
        const held = JSON.stringify(entry);
        assert.ok(!held.includes(idToken), 'no ID token in the cached entry');
        assert.ok(!held.includes(refreshToken), 'no refresh token in the cached entry');
      }
      assert.equal(replica.codecStats.decrypts, 1);
    });

    it('after a cache hit, reads the tokens logout and refresh need back from the cookie, once', async () => {
      const { m, browser } = await cachedLogin();
      const session = valid(await m.load(browser, true));
      assert.equal(m.codecStats.decrypts, 0, 'a hit, not a decode');
      assert.equal(session.tokens.accessToken, 'access-1');
      assert.equal(session.tokens.expiresAt, login.tokens.expiresAt);
      assert.equal(m.codecStats.decrypts, 0, 'what the hot path reads needs no decrypt');
      assert.equal(session.tokens.idToken, idToken, 'the id_token_hint for logout');
      assert.equal(session.tokens.refreshToken, refreshToken, 'the grant for a refresh');
      assert.equal(m.codecStats.decrypts, 1, 'the cookie opened once for both');
      assert.equal(session.tokens.idToken, idToken);
      assert.equal(m.codecStats.decrypts, 1);
    });

    it('a session without refresh or ID token says so without opening the cookie', async () => {
      const m = manager();
      const bare: NewSession = { ...login, tokens: { accessToken: 'a', expiresAt: 1 } };
      const browser = applySetCookie(new Map(), (await m.create(bare, new Map(), true)).setCookie);
      const session = valid(await m.load(browser, true));
      assert.equal(session.tokens.refreshToken, undefined);
      assert.equal(session.tokens.idToken, undefined);
      assert.equal(m.codecStats.decrypts, 0);
    });

    it('keeps the ID token for an app that forwards it: one decode to add it, none after', async () => {
      const { m, cache, browser, key } = await cachedLogin();
      const first = valid(await m.load(browser, true, { cacheIdToken: true }));
      assert.equal(first.tokens.idToken, idToken);
      assert.equal(cache.get(key)?.idToken, idToken);
      assert.ok(!JSON.stringify(cache.get(key)).includes(refreshToken));
      for (let i = 0; i < 10; i++) {
        const session = valid(await m.load(browser, true, { cacheIdToken: true }));
        assert.equal(session.tokens.idToken, idToken);
      }
      assert.equal(m.codecStats.decrypts, 1);
    });

    it('re-issues a cached session (touch, update) with every token sealed', async () => {
      const c = clock();
      const { m, browser } = await cachedLogin({ now: c.now });
      const touching = manager({ idleTimeout: 10 * MINUTE }, { now: c.now });
      valid(await touching.load(browser, true));
      c.advance(2 * MINUTE);
      const touched = await touching.load(browser, true);
      valid(touched);
      const touchLines = touched.kind === 'valid' ? touched.setCookie : [];
      assert.equal(touchLines.length, 1, 'a hit, re-issued');
      const afterTouch = applySetCookie(new Map(browser), touchLines);

      const hit = await m.load(browser, true);
      assert.equal(m.codecStats.decrypts, 0);
      const updated = await m.update(
        { session: valid(hit), ref: { kind: 'cookie' } },
        { claims: { ...login.claims, email: 'alice@new.example' } },
        browser,
        true,
      );
      const afterUpdate = applySetCookie(new Map(browser), updated.setCookie);

      for (const jar of [afterTouch, afterUpdate]) {
        const reopened = valid(await manager({}, { now: c.now }).load(jar, true));
        assert.deepEqual(plain(reopened.tokens), withTokens.tokens);
      }
      assert.deepEqual(plain(updated.session.tokens), withTokens.tokens);
    });
  });

  it('plain http on loopback uses the unprefixed, non-Secure cookie', async () => {
    const m = manager();
    const created = await m.create(login, new Map(), false);
    assert.equal(nameOf(created.setCookie[0]!), '_eoa');
    const browser = applySetCookie(new Map(), created.setCookie);
    valid(await m.load(browser, false));
    assert.equal((await m.load(browser, true)).kind, 'invalid');
  });
});

describe('session manager (server store)', () => {
  it('the cookie holds only a ticket; load, update, end work through the store', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({ store: 'server' }, serverDeps(backend, c.now));
    const created = await m.create(login, new Map(), true);
    const browser = applySetCookie(new Map(), created.setCookie);
    assert.match(browser.get('__Host-_eoa')!, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    const loaded = await m.load(browser, true);
    assert.deepEqual(valid(loaded), created.session);
    const tokens = { accessToken: 'access-2', expiresAt: c.now() + 1 };
    const updated = await m.update(
      { session: valid(loaded), ref: loaded.kind === 'valid' ? loaded.ref : created.ref },
      { tokens },
      browser,
      true,
    );
    assert.deepEqual(updated.setCookie, [], 'the ticket does not change');
    assert.deepEqual(valid(await m.load(browser, true)).tokens, tokens);
    const lines = await m.end(browser, true);
    assert.deepEqual(lines.map(nameOf), ['__Host-_eoa']);
    const after = await m.load(browser, true);
    assert.equal(after.kind === 'invalid' && after.reason, 'unknown');
    await backend.close();
  });

  it('maxAge and idleTimeout are enforced on the record', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager(
      { store: 'server', maxAge: 60 * MINUTE, idleTimeout: 10 * MINUTE },
      serverDeps(backend, c.now),
    );
    const browser = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    for (let i = 0; i < 5; i++) {
      c.advance(9 * MINUTE);
      valid(await m.load(browser, true)); // each use extends the idle deadline
    }
    c.advance(15 * MINUTE); // 60 minutes after login
    const result = await m.load(browser, true);
    assert.notEqual(result.kind, 'valid');
    const idle = manager({ store: 'server', idleTimeout: 10 * MINUTE }, serverDeps(backend, c.now));
    const jar = applySetCookie(new Map(), (await idle.create(login, new Map(), true)).setCookie);
    c.advance(10 * MINUTE);
    assert.notEqual((await idle.load(jar, true)).kind, 'valid');
    await backend.close();
  });

  it('a new login replaces the old server session', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({ store: 'server' }, serverDeps(backend, c.now));
    const first = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    const oldTicket = new Map(first);
    applySetCookie(first, (await m.create(login, first, true)).setCookie);
    assert.notEqual(first.get('__Host-_eoa'), oldTicket.get('__Host-_eoa'));
    assert.equal((await m.load(oldTicket, true)).kind, 'invalid');
    valid(await m.load(first, true));
    await backend.close();
  });

  it('back-channel logout by sid and by sub ends the sessions', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({ store: 'server' }, serverDeps(backend, c.now));
    const a = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    const b = applySetCookie(
      new Map(),
      (await m.create({ ...login, sid: 'idp-session-2' }, new Map(), true)).setCookie,
    );
    assert.equal(await m.endBySid('idp-session-1'), 1);
    assert.equal((await m.load(a, true)).kind, 'invalid');
    valid(await m.load(b, true));
    assert.equal(await m.endBySub('alice'), 1);
    assert.equal((await m.load(b, true)).kind, 'invalid');
    assert.equal(await manager().endBySub('alice'), 0, 'cookie sessions are not in the store');
    await backend.close();
  });

  it('a failing store is STORE_UNAVAILABLE (503), never a silent logout', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({ store: 'server' }, serverDeps(backend, c.now));
    const browser = applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
    // Fault injection: the same keyspaces over a backend whose reads fail.
    const failing: StoreBackend = { ...backend, get: () => Promise.reject(new Error('down')) };
    const broken = manager({ store: 'server' }, serverDeps(failing, c.now));
    await assert.rejects(broken.load(browser, true), (error: unknown) => {
      assert.ok(error instanceof AuthzError);
      assert.equal(error.code, 'STORE_UNAVAILABLE');
      assert.equal(error.status, 503);
      return true;
    });
    await backend.close();
  });

  it('needs the server keyspaces', () => {
    assert.throws(() => manager({ store: 'server' }), TypeError);
  });
});
