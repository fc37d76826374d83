/**
 * Memory per cached session, run as its own process (`node --expose-gc session-memory.js N
 * opaque|jwt [id-token]`): fills a real CookieSessions' decoded-session cache with N distinct
 * sessions and prints RSS and heap before and after as one JSON line. `id-token` loads as an
 * app that forwards the ID token upstream does, so the cache keeps it.
 */
import { CookieSessions } from '../src/session/cookie-sessions.ts';
import { ExpiringLru } from '../src/expiring-lru.ts';
import type { CachedSession } from '../src/session/session-cache.ts';
import {
  cookieSessionOptions,
  jarFrom,
  jwtTokenSession,
  opaqueTokenSession,
} from './session-profiles.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const collect = gc;

function settle(): { rss: number; heap: number } {
  collect();
  collect();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed };
}

const sessions = Number(process.argv[2] ?? '10000');
const profile = process.argv[3] === 'jwt' ? 'jwt' : 'opaque';
const expiresAt = Date.now() + 3_600_000;
const make = profile === 'jwt' ? jwtTokenSession : opaqueTokenSession;
const cacheIdToken = process.argv[4] === 'id-token';

const cache = new ExpiringLru<CachedSession>({ maxEntries: sessions, now: Date.now });
const reader = new CookieSessions(cookieSessionOptions, { cache });
// The writer's own cache is off, so only the reader's loads fill a cache.
const writer = new CookieSessions(cookieSessionOptions, {
  cache: new ExpiringLru<CachedSession>({ maxEntries: 0, now: Date.now }),
});

// Warm every code path once so compiled code and lazily built tables are in the baseline.
for (let i = 0; i < 200; i++) {
  const { setCookie } = await writer.create(make(expiresAt), new Map(), true);
  await reader.load(jarFrom(setCookie), true, { cacheIdToken });
}
cache.clear();
const before = settle();

// Each cookie is sealed, loaded and dropped: the process holds only what the cache keeps.
for (let i = 0; i < sessions; i++) {
  const data = make(expiresAt);
  const { setCookie } = await writer.create({ ...data, sub: `${data.sub}-${i}` }, new Map(), true);
  const loaded = await reader.load(jarFrom(setCookie), true, { cacheIdToken });
  if (loaded.kind !== 'valid') throw new Error(`session ${i} did not load: ${loaded.kind}`);
}
if (cache.size !== sessions) throw new Error(`cache holds ${cache.size}, expected ${sessions}`);
const after = settle();
process.stdout.write(
  JSON.stringify({
    sessions,
    profile: cacheIdToken ? `${profile}, ID token forwarded` : profile,
    rssBytes: after.rss,
    heapBytes: after.heap,
    rssPerSession: (after.rss - before.rss) / sessions,
    heapPerSession: (after.heap - before.heap) / sessions,
  }) + '\n',
);
