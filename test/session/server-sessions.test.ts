/** Server sessions: records in the store, the per-replica read window, logouts, store outages. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthzError } from '../../src/errors.ts';
import { serverSessionReuseMs } from '../../src/session/server-session-cache.ts';
import { ServerSessions, type ServerSessionsDeps } from '../../src/session/server-sessions.ts';
import type { Session } from '../../src/session/session.ts';
import type { SessionLoad, SessionOptions } from '../../src/session/sessions.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import type { StoreBackend } from '../../src/store/store-backend.ts';
import { applySetCookie, nameOf } from './browser-cookies.ts';
import { baseOptions, clock, loggedInAt, login, MINUTE } from './session-fixtures.ts';

function manager(options: Partial<SessionOptions>, deps: ServerSessionsDeps): ServerSessions {
  return new ServerSessions({ ...baseOptions, ...options }, deps);
}

function serverDeps(backend: StoreBackend, now: () => number): ServerSessionsDeps {
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

function valid(result: SessionLoad): Session {
  if (result.kind !== 'valid')
    assert.fail(`expected a valid session, got ${JSON.stringify(result)}`);
  return result.session;
}

describe('server sessions', () => {
  it('the cookie holds only a ticket; load, update, end work through the store', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({}, serverDeps(backend, c.now));
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

  it('an update of a session it did not load (a cookie session) is refused', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({}, serverDeps(backend, c.now));
    const { session } = await m.create(login, new Map(), true);
    await assert.rejects(
      m.update({ session, ref: { kind: 'cookie' } }, { claims: {} }, new Map(), true),
      TypeError,
    );
    await backend.close();
  });

  it('maxAge and idleTimeout are enforced on the record', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager(
      { maxAge: 60 * MINUTE, idleTimeout: 10 * MINUTE },
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
    const idle = manager({ idleTimeout: 10 * MINUTE }, serverDeps(backend, c.now));
    const jar = await loggedInAt(idle);
    c.advance(10 * MINUTE);
    assert.notEqual((await idle.load(jar, true)).kind, 'valid');
    await backend.close();
  });

  it('a new login replaces the old server session', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({}, serverDeps(backend, c.now));
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
    const m = manager({}, serverDeps(backend, c.now));
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
    await backend.close();
  });

  it('a failing store is STORE_UNAVAILABLE (503), never a silent logout', async () => {
    const c = clock();
    const backend = createMemoryBackend({ now: c.now, sweepIntervalMs: 0 });
    const m = manager({}, serverDeps(backend, c.now));
    const browser = await loggedInAt(m);
    // Fault injection: the same keyspaces over a backend whose reads fail.
    const failing: StoreBackend = { ...backend, get: () => Promise.reject(new Error('down')) };
    const broken = manager({}, serverDeps(failing, c.now));
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
    const writer = manager({}, serverDeps(wrapped, c.now));
    const browser = await loggedInAt(writer);
    for (let i = 0; i < 10; i++) valid(await writer.load(browser, true));
    assert.equal(observed.reads, 0, 'the replica that created it needs no read at first');
    // Another replica over the same store, with its own cache.
    const reader = manager({}, serverDeps(wrapped, c.now));
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
    const m = manager({}, serverDeps(wrapped, c.now));
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
    const m = manager({}, serverDeps(backend, c.now));
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
    const here = manager({}, serverDeps(backend, c.now));
    const there = manager({}, serverDeps(backend, c.now));
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
    const writer = manager({}, serverDeps(backend, c.now));
    const browser = await loggedInAt(writer);
    const m = manager({}, serverDeps(slow, c.now));
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
    const here = manager({}, serverDeps(backend, c.now));
    const there = manager({}, serverDeps(backend, c.now));
    const browser = await loggedInAt(here);
    const refreshed = async (m: ServerSessions, accessToken: string) => {
      const loaded = await m.load(browser, true);
      if (loaded.kind !== 'valid') assert.fail('not valid');
      await m.update(
        loaded,
        { tokens: { accessToken, expiresAt: c.now() + MINUTE } },
        browser,
        true,
      );
    };
    const tokenOn = async (m: ServerSessions) =>
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
    const options = { idleTimeout: 10 * MINUTE };
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
    const m = manager({}, serverDeps(wrapped, c.now));
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
});
