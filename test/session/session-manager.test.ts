/** The session manager over both stores: lifetimes, touches, revocation, cache, rotation, logout. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthzError } from '../../src/errors.ts';
import { serverSessionReuseMs } from '../../src/session/server-session-cache.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { SessionCache } from '../../src/session/session-cache.ts';
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
import { testBinding } from './test-binding.ts';

const SECRET = 'primary-session-secret-at-least-32-bytes';
const OLD_SECRET = 'retired-session-secret-at-least-32-bytes';
const MINUTE = 60_000;

const baseOptions: SessionManagerOptions = {
  store: 'cookie',
  secrets: [SECRET],
  cookieName: '_eoa',
  binding: testBinding,
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

/** A browser's cookies right after logging in through `m`. */
async function loggedInAt(m: SessionManager): Promise<Map<string, string>> {
  return applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
}

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
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
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
    const browser = await loggedInAt(writer);
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
    const browser = await loggedInAt(m);
    const key = sha256Base64url(browser.get('__Host-_eoa')!);
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
    const browser = await loggedInAt(m);
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
    const browser = await loggedInAt(m);
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
    const browser = await loggedInAt(foreign);
    const result = await m.load(browser, true);
    assert.equal(result.kind === 'invalid' && result.reason, 'undecodable');
    assert.deepEqual(result.kind === 'invalid' && result.setCookie.map(nameOf), ['__Host-_eoa']);
    const junk = await m.load(new Map([['__Host-_eoa', 'garbage']]), true);
    assert.equal(junk.kind, 'invalid');
  });

  it('a cookie from a rotated-out secret still loads; new cookies use the new secret', async () => {
    const before = manager({ secrets: [OLD_SECRET] });
    const browser = await loggedInAt(before);
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
    const browser = await loggedInAt(m);
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
      return { m, cache, browser, key: sha256Base64url(browser.get('__Host-_eoa')!) };
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
    const browser = await loggedInAt(m);
    for (let i = 0; i < 5; i++) {
      c.advance(9 * MINUTE);
      valid(await m.load(browser, true)); // each use extends the idle deadline
    }
    c.advance(15 * MINUTE); // 60 minutes after login
    const result = await m.load(browser, true);
    assert.notEqual(result.kind, 'valid');
    const idle = manager({ store: 'server', idleTimeout: 10 * MINUTE }, serverDeps(backend, c.now));
    const jar = await loggedInAt(idle);
    c.advance(10 * MINUTE);
    assert.notEqual((await idle.load(jar, true)).kind, 'valid');
    await backend.close();
  });

  it('a new login replaces the old server session', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({ store: 'server' }, serverDeps(backend, c.now));
    const first = await loggedInAt(m);
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
    const a = await loggedInAt(m);
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
    const browser = await loggedInAt(m);
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

  /** The memory backend with its session-record reads counted, and optionally failing. */
  function observedBackend(now: () => number) {
    const backend = createMemoryBackend({ now, sweepIntervalMs: 0 });
    const observed = { reads: 0, down: false };
    const wrapped: StoreBackend = {
      ...backend,
      get: (key) => {
        if (observed.down) return Promise.reject(new Error('store down'));
        if (key.startsWith('session:')) observed.reads++;
        return backend.get(key);
      },
    };
    return { backend, wrapped, observed };
  }

  it('a hot server session is read from the store once per window, not once per request', async () => {
    const c = clock();
    const { backend, wrapped, observed } = observedBackend(c.now);
    const writer = manager({ store: 'server' }, serverDeps(wrapped, c.now));
    const browser = await loggedInAt(writer);
    for (let i = 0; i < 10; i++) valid(await writer.load(browser, true));
    assert.equal(observed.reads, 0, 'the replica that created it needs no read at first');
    // Another replica over the same store, with its own cache.
    const reader = manager({ store: 'server' }, serverDeps(wrapped, c.now));
    for (let i = 0; i < 100; i++) valid(await reader.load(browser, true));
    assert.equal(observed.reads, 1);
    c.advance(serverSessionReuseMs);
    valid(await reader.load(browser, true));
    assert.equal(observed.reads, 2, 'read again once the window has passed');
    await backend.close();
  });

  it('a cached ticket id with a wrong key is still read and opened against the store, and refused', async () => {
    const c = clock();
    const { backend, wrapped, observed } = observedBackend(c.now);
    const m = manager({ store: 'server' }, serverDeps(wrapped, c.now));
    const browser = await loggedInAt(m);
    const [id] = browser.get('__Host-_eoa')!.split('.');
    const forged = new Map([['__Host-_eoa', `${id}.${Buffer.alloc(32, 1).toString('base64url')}`]]);
    const refused = await m.load(forged, true);
    assert.equal(refused.kind === 'invalid' && refused.reason, 'unknown');
    assert.equal(observed.reads, 1, 'the forged ticket went to the store');
    valid(await m.load(browser, true));
    assert.equal(observed.reads, 1, 'and left the real entry in place');
    await backend.close();
  });

  it('a logout or back-channel logout here ends a cached session at once', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({ store: 'server' }, serverDeps(backend, c.now));
    const browser = await loggedInAt(m);
    valid(await m.load(browser, true));
    await m.end(browser, true);
    const ended = await m.load(browser, true);
    assert.equal(ended.kind === 'invalid' && ended.reason, 'unknown');
    for (const end of [() => m.endBySid('idp-session-1'), () => m.endBySub('alice')]) {
      const jar = await loggedInAt(m);
      valid(await m.load(jar, true));
      assert.equal(await end(), 1);
      assert.equal((await m.load(jar, true)).kind, 'invalid');
    }
    await backend.close();
  });

  it('a logout on another replica is seen here once the window has passed', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const here = manager({ store: 'server' }, serverDeps(backend, c.now));
    const there = manager({ store: 'server' }, serverDeps(backend, c.now));
    const browser = await loggedInAt(there);
    valid(await here.load(browser, true));
    await there.end(browser, true);
    c.advance(serverSessionReuseMs);
    assert.equal((await here.load(browser, true)).kind, 'invalid');
    await backend.close();
  });

  it('a store read that a logout here overtook does not bring the session back', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    let release: (() => void) | undefined;
    // Fault injection: the first session read returns what it saw only after a logout ran.
    const slow: StoreBackend = {
      ...backend,
      get: async (key) => {
        const value = await backend.get(key);
        if (key.startsWith('session:') && release === undefined) {
          await new Promise<void>((resolve) => (release = resolve));
        }
        return value;
      },
    };
    const writer = manager({ store: 'server' }, serverDeps(backend, c.now));
    const browser = await loggedInAt(writer);
    const m = manager({ store: 'server' }, serverDeps(slow, c.now));
    const inFlight = m.load(browser, true);
    while (release === undefined) await new Promise((resolve) => setImmediate(resolve));
    await m.end(browser, true);
    release();
    valid(await inFlight); // it was valid when this request read it
    const after = await m.load(browser, true);
    assert.equal(after.kind === 'invalid' && after.reason, 'unknown');
    await backend.close();
  });

  it('a refresh here is served at once; one on another replica once the window has passed', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const here = manager({ store: 'server' }, serverDeps(backend, c.now));
    const there = manager({ store: 'server' }, serverDeps(backend, c.now));
    const browser = await loggedInAt(here);
    const refreshed = async (m: SessionManager, accessToken: string) => {
      const loaded = await m.load(browser, true);
      if (loaded.kind !== 'valid') assert.fail('not valid');
      await m.update(
        loaded,
        { tokens: { accessToken, expiresAt: c.now() + MINUTE } },
        browser,
        true,
      );
    };
    const tokenOn = async (m: SessionManager) =>
      valid(await m.load(browser, true)).tokens.accessToken;
    assert.equal(await tokenOn(there), 'access-1');
    await refreshed(here, 'access-2');
    assert.equal(await tokenOn(here), 'access-2');
    assert.equal(await tokenOn(there), 'access-1', 'reused within the window');
    c.advance(serverSessionReuseMs);
    assert.equal(await tokenOn(there), 'access-2');
    await refreshed(there, 'access-3');
    assert.equal(await tokenOn(there), 'access-3');
    c.advance(serverSessionReuseMs);
    assert.equal(await tokenOn(here), 'access-3');
    await backend.close();
  });

  it('a touch never writes back a session deleted on another replica within the window', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const options = { store: 'server', idleTimeout: 10 * MINUTE } as const;
    const here = manager(options, serverDeps(backend, c.now));
    const there = manager(options, serverDeps(backend, c.now));
    const browser = await loggedInAt(there);
    c.advance(MINUTE - 100); // the touch interval is a minute
    valid(await here.load(browser, true));
    await there.end(browser, true);
    c.advance(200); // still within the window, and a touch is due
    assert.equal((await here.load(browser, true)).kind, 'invalid');
    assert.equal((await there.load(browser, true)).kind, 'invalid', 'the record stays deleted');
    await backend.close();
  });

  it('store down: a session read within the window is served, after it 503, never a login', async () => {
    const c = clock();
    const { backend, wrapped, observed } = observedBackend(c.now);
    const m = manager({ store: 'server' }, serverDeps(wrapped, c.now));
    const browser = await loggedInAt(m);
    c.advance(serverSessionReuseMs);
    valid(await m.load(browser, true));
    observed.down = true;
    c.advance(serverSessionReuseMs - 1);
    valid(await m.load(browser, true));
    c.advance(1);
    await assert.rejects(m.load(browser, true), (error: unknown) => {
      assert.ok(error instanceof AuthzError);
      assert.equal(error.code, 'STORE_UNAVAILABLE');
      return true;
    });
    observed.down = false;
    valid(await m.load(browser, true));
    await backend.close();
  });

  it('needs the server keyspaces', () => {
    assert.throws(() => manager({ store: 'server' }), TypeError);
  });
});
