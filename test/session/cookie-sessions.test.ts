/** Cookie sessions: lifetimes, touches, revocation, the decoded-session cache, rotation, logout. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CookieSessions, type CookieSessionsDeps } from '../../src/session/cookie-sessions.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { ExpiringLru } from '../../src/expiring-lru.ts';
import type { CachedSession } from '../../src/session/session-cache.ts';
import type { NewSession, Session } from '../../src/session/session.ts';
import type { RevocationSubject, SessionLoad, SessionOptions } from '../../src/session/sessions.ts';
import { applySetCookie, attributesOf, nameOf } from './browser-cookies.ts';
import { sessionCodec } from './session-codec.ts';
import { baseOptions, clock, loggedInAt, login, MINUTE, SECRET } from './session-fixtures.ts';

const OLD_SECRET = 'retired-session-secret-at-least-32-bytes';

function manager(
  options: Partial<SessionOptions> = {},
  deps: CookieSessionsDeps = {},
): CookieSessions {
  return new CookieSessions({ ...baseOptions, ...options }, deps);
}

/** Cookie sessions with their codec at hand, to count decryptions. */
function counted(options: Partial<SessionOptions> = {}, deps: CookieSessionsDeps = {}) {
  const codec = sessionCodec({ ...baseOptions, ...options });
  return { m: manager(options, { ...deps, codec }), decrypts: () => codec.decrypts() };
}

function valid(result: SessionLoad): Session {
  if (result.kind !== 'valid')
    assert.fail(`expected a valid session, got ${JSON.stringify(result)}`);
  return result.session;
}

/** A value as sealed: own data only, accessors read. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe('cookie sessions', () => {
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
    const { m: reader, decrypts } = counted({}, { now: c.now });
    valid(await reader.load(browser, true));
    assert.equal(decrypts(), 1);
    for (let i = 0; i < 100; i++) valid(await reader.load(browser, true));
    assert.equal(decrypts(), 1, 'no decrypt on a cache hit');
  });

  it('cache entries expire with the session, and maxAge is enforced server-side', async () => {
    const c = clock();
    const cache = new ExpiringLru<CachedSession>({ maxEntries: 100_000, now: c.now });
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
    // Asked about the cached session itself (no copy per Check): these are what it reads.
    const { id, sub, sid, createdAt } = asked[0] ?? assert.fail('not asked');
    assert.deepEqual(
      { id, sub, sid, createdAt },
      {
        id: created.session.id,
        sub: 'alice',
        sid: 'idp-session-1',
        createdAt: created.session.createdAt,
      },
    );
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
    const { m, decrypts: decryptsSoFar } = counted();
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
    const decrypts = decryptsSoFar();
    const lines = await m.end(browser, true);
    assert.deepEqual(lines.map(nameOf), ['__Host-_eoa']);
    assert.equal(attributesOf(lines[0]!).get('max-age'), '0');
    await m.load(browser, true);
    assert.equal(decryptsSoFar(), decrypts + 1, 'the cache entry was dropped');
  });

  it('back-channel logout deletes nothing: the revocation check refuses cookie sessions', async () => {
    const m = manager();
    const browser = await loggedInAt(m);
    assert.equal(await m.endBySid('idp-session-1'), 0);
    assert.equal(await m.endBySub('alice'), 0);
    valid(await m.load(browser, true));
  });

  describe('what the decoded-session cache keeps', () => {
    const idToken = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.id-token-signature';
    const refreshToken = 'refresh-token-kept-only-in-the-cookie';
    const withTokens: NewSession = { ...login, tokens: { ...login.tokens, idToken, refreshToken } };

    async function cachedLogin(deps: CookieSessionsDeps = {}) {
      const cache = new ExpiringLru<CachedSession>({
        maxEntries: 100_000,
        now: deps.now ?? Date.now,
      });
      const { m, decrypts } = counted({}, { ...deps, cache });
      const created = await m.create(withTokens, new Map(), true);
      const browser = applySetCookie(new Map(), created.setCookie);
      return { m, decrypts, cache, browser, key: sha256Base64url(browser.get('__Host-_eoa')!) };
    }

    it('holds neither the refresh token nor, for an app not forwarding it, the ID token', async () => {
      const { m, cache, browser, key } = await cachedLogin();
      // Filled when the cookie was sealed (login), and when another replica decodes it.
      const replicaCache = new ExpiringLru<CachedSession>({ maxEntries: 100_000, now: Date.now });
      const { m: replica, decrypts } = counted({}, { cache: replicaCache });
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
      assert.equal(decrypts(), 1);
    });

    it('after a cache hit, reads the tokens logout and refresh need back from the cookie, once', async () => {
      const { m, decrypts, browser } = await cachedLogin();
      const session = valid(await m.load(browser, true));
      assert.equal(decrypts(), 0, 'a hit, not a decode');
      assert.equal(session.tokens.accessToken, 'access-1');
      assert.equal(session.tokens.expiresAt, login.tokens.expiresAt);
      assert.equal(decrypts(), 0, 'what the hot path reads needs no decrypt');
      assert.equal(session.tokens.idToken, idToken, 'the id_token_hint for logout');
      assert.equal(session.tokens.refreshToken, refreshToken, 'the grant for a refresh');
      assert.equal(decrypts(), 1, 'the cookie opened once for both');
      assert.equal(session.tokens.idToken, idToken);
      assert.equal(decrypts(), 1);
    });

    it('a session without refresh or ID token says so without opening the cookie', async () => {
      const { m, decrypts } = counted();
      const bare: NewSession = { ...login, tokens: { accessToken: 'a', expiresAt: 1 } };
      const browser = applySetCookie(new Map(), (await m.create(bare, new Map(), true)).setCookie);
      const session = valid(await m.load(browser, true));
      assert.equal(session.tokens.refreshToken, undefined);
      assert.equal(session.tokens.idToken, undefined);
      assert.equal(decrypts(), 0);
    });

    it('keeps the ID token for an app that forwards it: one decode to add it, none after', async () => {
      const { m, decrypts, cache, browser, key } = await cachedLogin();
      const first = valid(await m.load(browser, true, { cacheIdToken: true }));
      assert.equal(first.tokens.idToken, idToken);
      assert.equal(cache.get(key)?.idToken, idToken);
      assert.ok(!JSON.stringify(cache.get(key)).includes(refreshToken));
      for (let i = 0; i < 10; i++) {
        const session = valid(await m.load(browser, true, { cacheIdToken: true }));
        assert.equal(session.tokens.idToken, idToken);
      }
      assert.equal(decrypts(), 1);
    });

    it('re-issues a cached session (touch, update) with every token sealed', async () => {
      const c = clock();
      const { m, decrypts, browser } = await cachedLogin({ now: c.now });
      const touching = manager({ idleTimeout: 10 * MINUTE }, { now: c.now });
      valid(await touching.load(browser, true));
      c.advance(2 * MINUTE);
      const touched = await touching.load(browser, true);
      valid(touched);
      const touchLines = touched.kind === 'valid' ? touched.setCookie : [];
      assert.equal(touchLines.length, 1, 'a hit, re-issued');
      const afterTouch = applySetCookie(new Map(browser), touchLines);

      const hit = await m.load(browser, true);
      assert.equal(decrypts(), 0);
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
