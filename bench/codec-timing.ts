/** Times the session cookie codec: seal, cold open via jose and via node:crypto, hot load via the cache. */
import { compactDecrypt } from 'jose';
import { createCookieCodec } from '../src/session/cookie-codec.ts';
import { CookieSessions } from '../src/session/cookie-sessions.ts';
import { deriveKeyRing } from '../src/session/session-keys.ts';
import type { NewSession } from '../src/session/session.ts';
import {
  benchSecret,
  cookieSessionOptions,
  jarFrom,
  jwtTokenSession,
  opaqueTokenSession,
} from './session-profiles.ts';

/** Median microseconds of each operation for one session profile. */
export interface CodecTiming {
  readonly profile: 'opaque' | 'jwt';
  readonly jweChars: number;
  readonly sealUs: number;
  /** `compactDecrypt` from jose (WebCrypto). */
  readonly openJoseUs: number;
  /** The codec's own `node:crypto` path. */
  readonly openNodeCryptoUs: number;
  /** `CookieSessions.load` of a cached session (digest + LRU hit). */
  readonly loadCachedUs: number;
}

async function median(runs: number, run: () => unknown): Promise<number> {
  const samples = new Float64Array(runs);
  for (let i = 0; i < Math.min(200, runs); i++) await run(); // warm up
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples[i] = Number(process.hrtime.bigint() - start) / 1_000;
  }
  samples.sort();
  return samples[runs >> 1] ?? Number.NaN;
}

async function timeProfile(
  profile: 'opaque' | 'jwt',
  data: NewSession,
  runs: number,
): Promise<CodecTiming> {
  const ring = deriveKeyRing([benchSecret], 'session', cookieSessionOptions.binding);
  const codec = createCookieCodec(ring);
  const sessions = new CookieSessions(cookieSessionOptions);
  const { session, setCookie } = await sessions.create(data, new Map(), true);
  const value = codec.seal(session);
  const browser = jarFrom(setCookie);
  const key = ring.current.keyObject();
  const options = { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] };
  return {
    profile,
    jweChars: value.length,
    sealUs: await median(runs, () => codec.seal(session)),
    openJoseUs: await median(runs, () => compactDecrypt(value, key, options)),
    openNodeCryptoUs: await median(runs, () => codec.open(value)),
    loadCachedUs: await median(runs, () => sessions.load(browser, true)),
  };
}

/** Times both profiles, `runs` samples per operation. */
export async function timeCookieCodec(runs: number): Promise<CodecTiming[]> {
  const expiresAt = Date.now() + 3_600_000;
  return [
    await timeProfile('opaque', opaqueTokenSession(expiresAt), runs),
    await timeProfile('jwt', jwtTokenSession(expiresAt), runs),
  ];
}
