/** Measures the codec (encode, cold decode via jose and via node:crypto, hot decode via the cache) and cookie sizes. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { compactDecrypt } from 'jose';
import { createCookieCodec } from '../../src/session/cookie-codec.ts';
import { SessionManager } from '../../src/session/session-manager.ts';
import { deriveKeyRing } from '../../src/session/session-keys.ts';
import type { NewSession } from '../../src/session/session.ts';
import { applySetCookie } from './browser-cookies.ts';

const RUNS = 10_000;
const SECRET = 'timing-secret-of-at-least-thirty-two-bytes';

/** A JWT-shaped string of about `length` characters. */
function jwtLike(length: number): string {
  const body = randomBytes(Math.ceil((length * 3) / 4)).toString('base64url');
  return `${body.slice(0, 36)}.${body.slice(36, length - 344)}.${body.slice(0, 342)}`;
}

const claims = {
  sub: '3f1c2a9e-7b4d-4e8a-9c61-0d2b5e8f4a17',
  email: 'alice.example@example.com',
  email_verified: true,
  name: 'Alice Example',
  preferred_username: 'alice',
  groups: ['engineering', 'grafana-admins', 'on-call'],
  roles: ['viewer', 'editor'],
};

/** An IdP issuing opaque access and refresh tokens and a JWT ID token (node-oidc-provider's default). */
const opaqueTokens: NewSession = {
  sub: claims.sub,
  sid: randomBytes(16).toString('base64url'),
  claims,
  tokens: {
    accessToken: randomBytes(32).toString('base64url'),
    refreshToken: randomBytes(32).toString('base64url'),
    idToken: jwtLike(900),
    expiresAt: Date.now() + 300_000,
  },
};

/** An IdP issuing JWT access, refresh and ID tokens (Keycloak-like). */
const jwtTokens: NewSession = {
  ...opaqueTokens,
  tokens: {
    accessToken: jwtLike(1_100),
    refreshToken: jwtLike(650),
    idToken: jwtLike(950),
    expiresAt: Date.now() + 300_000,
  },
};

async function median(run: () => unknown): Promise<number> {
  const samples = new Float64Array(RUNS);
  for (let i = 0; i < 200; i++) await run(); // warm up
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples[i] = Number(process.hrtime.bigint() - start) / 1_000;
  }
  samples.sort();
  return samples[RUNS >> 1]!;
}

function heapUsedAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function cookieHeaderBytes(lines: readonly string[]): number {
  const jar = applySetCookie(new Map(), lines);
  return Buffer.byteLength([...jar].map(([n, v]) => `${n}=${v}`).join('; '));
}

async function measure(t: TestContext, profile: string, data: NewSession): Promise<void> {
  const ring = deriveKeyRing([SECRET], 'session');
  const codec = createCookieCodec(ring);
  const manager = new SessionManager({
    store: 'cookie',
    secrets: [SECRET],
    cookieName: '_eoa',
    maxAge: 86_400_000,
    sameSite: 'lax',
    maxPendingLogins: 5,
    loginTimeout: 600_000,
  });
  const { session, setCookie } = await manager.create(data, new Map(), true);
  const value = codec.seal(session);
  const browser = applySetCookie(new Map(), setCookie);
  const key = ring.current.keyObject();
  const options = { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] };

  const encode = await median(() => codec.seal(session));
  const jose = await median(() => compactDecrypt(value, key, options));
  const direct = await median(() => codec.open(value));
  const hot = await median(() => manager.load(browser, true));

  t.diagnostic(
    `${profile}: median of ${RUNS} (µs): encode ${encode.toFixed(1)}, decode cold via jose ` +
      `${jose.toFixed(1)}, decode cold via node:crypto ${direct.toFixed(1)}, decode hot via ` +
      `cache ${hot.toFixed(1)}`,
  );
  t.diagnostic(
    `${profile}: JWE ${value.length} chars, ${setCookie.length} set-cookie line(s), ` +
      `cookie header ${cookieHeaderBytes(setCookie)} bytes`,
  );
  assert.ok(direct < jose, 'node:crypto decode must beat jose, or the codec should use jose');
  assert.ok(hot < direct, 'a cache hit must cost less than a decrypt');
}

describe('cookie codec timings', () => {
  it('typical session, opaque access and refresh tokens', (t) =>
    measure(t, 'opaque', opaqueTokens));
  it('typical session, JWT access, refresh and ID tokens', (t) => measure(t, 'jwt', jwtTokens));

  it('memory per cached session stays small', async (t) => {
    const n = 10_000;
    const manager = new SessionManager({
      store: 'cookie',
      secrets: [SECRET],
      cookieName: '_eoa',
      maxAge: 86_400_000,
      sameSite: 'lax',
      maxPendingLogins: 5,
      loginTimeout: 600_000,
    });
    const writer = new SessionManager({
      store: 'cookie',
      secrets: [SECRET],
      cookieName: '_eoa',
      maxAge: 86_400_000,
      sameSite: 'lax',
      maxPendingLogins: 5,
      loginTimeout: 600_000,
    });
    const cookies: Map<string, string>[] = [];
    for (const profile of [opaqueTokens, jwtTokens]) {
      cookies.length = 0;
      for (let i = 0; i < n; i++) {
        const data = {
          ...profile,
          sub: `${profile.sub}-${i}`,
          tokens: { ...profile.tokens, accessToken: `${profile.tokens.accessToken}${i}` },
        };
        cookies.push(
          applySetCookie(new Map(), (await writer.create(data, new Map(), true)).setCookie),
        );
      }
      const before = heapUsedAfterGc();
      for (const jar of cookies) await manager.load(jar, true);
      const perEntry = (heapUsedAfterGc() - before) / n;
      const name = profile === opaqueTokens ? 'opaque' : 'jwt';
      t.diagnostic(`${name}: ${Math.round(perEntry)} bytes of heap per cached session`);
      // Target 2 KiB for a typical session; 10% slack absorbs heap-measurement noise. JWT-heavy
      // sessions are larger because the token strings alone exceed 2 KiB.
      if (profile === opaqueTokens) assert.ok(perEntry <= 2_048 * 1.1, `${perEntry} > 2 KiB`);
    }
  });
});
