/** Bytes of heap per cached session stay within budget (codec timings live in `bench/`). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  cookieSessionOptions,
  jarFrom,
  jwtTokenSession,
  opaqueTokenSession,
} from '../../bench/session-profiles.ts';
import { CookieSessions } from '../../src/session/cookie-sessions.ts';
import { ExpiringLru } from '../../src/expiring-lru.ts';
import type { CachedSession } from '../../src/session/session-cache.ts';
import type { NewSession } from '../../src/session/session.ts';
import { sessionCodec } from './session-codec.ts';

function heapUsedAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Heap bytes per session fresh cookie sessions' cache holds after loading `n` distinct cookies. */
async function heapPerCachedSession(n: number, make: (expiresAt: number) => NewSession) {
  const expiresAt = Date.now() + 3_600_000;
  const writer = new CookieSessions(cookieSessionOptions, {
    cache: new ExpiringLru<CachedSession>({ maxEntries: 0, now: Date.now }),
  });
  const codec = sessionCodec(cookieSessionOptions);
  const reader = new CookieSessions(cookieSessionOptions, { codec });
  const cookies: Map<string, string>[] = [];
  for (let i = 0; i < n; i++) {
    const data = make(expiresAt);
    const { setCookie } = await writer.create(
      { ...data, sub: `${data.sub}-${i}` },
      new Map(),
      true,
    );
    cookies.push(jarFrom(setCookie));
  }
  const before = heapUsedAfterGc();
  for (const jar of cookies) assert.equal((await reader.load(jar, true)).kind, 'valid');
  const perEntry = (heapUsedAfterGc() - before) / n;
  // Reader and cookies stay alive until measured: only what the cache keeps is counted.
  assert.equal(codec.decrypts(), cookies.length);
  return perEntry;
}

describe('decoded-session cache memory', () => {
  // Target 2 KiB for a typical session (SPEC §13); 10% slack absorbs heap-measurement noise.
  it('holds a typical session in at most 1 KiB of heap: no refresh or ID token', async (t) => {
    const perEntry = await heapPerCachedSession(10_000, opaqueTokenSession);
    t.diagnostic(`opaque tokens: ${Math.round(perEntry)} bytes of heap per cached session`);
    assert.ok(perEntry <= 1_024 * 1.1, `${perEntry} > 1 KiB`);
  });

  it('holds a session with a 1 KB JWT access token in at most 2 KiB of heap', async (t) => {
    const perEntry = await heapPerCachedSession(10_000, jwtTokenSession);
    t.diagnostic(`JWT tokens: ${Math.round(perEntry)} bytes of heap per cached session`);
    assert.ok(perEntry <= 2_048 * 1.1, `${perEntry} > 2 KiB`);
  });
});
